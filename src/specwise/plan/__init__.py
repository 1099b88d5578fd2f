"""``specwise plan``: memory budget, pairing check, launch-config emitters and startup-log parser."""
