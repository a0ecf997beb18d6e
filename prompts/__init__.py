"""Versioned LLM prompts (one file per task and language)."""
