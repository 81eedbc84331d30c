"""Integrations with the user's own training code: :mod:`oasl.integrations.reporter` (stdlib only: what a
training script started by the ``command`` trainer writes its losses with) and :mod:`oasl.integrations.hf`
(Hugging Face ``transformers``; imported only when used). This package imports nothing on its own."""
