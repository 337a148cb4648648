"""Teach the studio classes of your own: a picture set, transfer learning on a shipped network, its honest estimate."""
