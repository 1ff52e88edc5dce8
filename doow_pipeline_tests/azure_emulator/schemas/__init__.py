"""JSON Schemas of the Azure responses the emulator validates, generated from Microsoft's REST specs.

The *.json files here are committed output of `generate.py` (see its docstring to regenerate them);
`spec_validation.py` loads them and reads nothing outside the repository.
"""
