from specwise.cli.main import main

main()
