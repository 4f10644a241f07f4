"""Test fixtures and benchmark harnesses, kept out of the library's main line: tiny random-weight
diffusers pipelines built at test time (`python -m backdrop.testing.tiny DIR`) and the bandit bake-off
datasets.
"""
