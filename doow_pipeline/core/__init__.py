"""Shared vocabulary of doow-pipeline: typed values every layer speaks. Imports nothing else of the package."""
