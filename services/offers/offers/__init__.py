"""The offers service: create, list and read offers; accept a bid (the sale). Owns `offers`."""
