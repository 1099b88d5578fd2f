"""Discrete-event serving simulator with speculative decoding, guard policies, arrivals and serve-sim."""
