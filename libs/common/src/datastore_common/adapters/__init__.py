"""Adapters: talk to other people's servers and translate their failures into ``errors`` types."""
