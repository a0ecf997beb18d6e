"""Text generation per slice: captions, grounded captions and VQA in German and English.

``rules`` makes them offline from the report analysis; ``llm_text`` with ``llm_client``,
``prompts``, ``answers`` (answer models) and ``checks`` (answers checked against the report)
makes them with an OpenAI-compatible server, which ``serve`` starts (llama.cpp or vLLM).
``grounding`` is the token form of grounded captions. May import ``engine``, ``anatomy`` and
``reports``; never ``imaging`` internals or ``publish``.
"""
