"""Hosted model providers other than OpenAI, each through its official client."""
