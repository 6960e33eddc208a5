"""The OpenAI-compatible model server (OpenAI, Azure, Ollama, vLLM, llama.cpp, Groq, ...)."""

from models.openai.llm import OpenAILLM

__all__ = ["OpenAILLM"]
