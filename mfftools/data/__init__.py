"""Readers of the user's data (training zip, RFW instance zip, insightface .bin pair files) and the
synthetic look-alike generator that writes the same formats."""
