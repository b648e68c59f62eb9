"""Generated answers: a language model writes the answer from the retrieved chunks only.

ANSWER_GENERATOR picks it: `extractive` (the default: no model, see answering.py),
`gemini` (Google's google-genai SDK with the old service's GOOGLE_API_KEY and
GENERATION_MODEL) or `openai` (the OpenAI chat-completions API through the `openai` SDK
at OPENAI_BASE_URL, which hosted models and local servers such as vLLM, llama.cpp's server
and Ollama all speak).

The prompt holds the question and the numbered chunks, nothing else, and asks for
citations `[n]`; it is cut to GENERATION_CONTEXT_TOKENS (estimated at four characters a
token), so a huge workspace cannot blow the request. The answer's sources are the chunks
it cites; citations of chunks that were not given are dropped. Timeouts and retries (the
SDKs' own exponential backoff on 429 and 5xx) come from settings. A failure is a 502 with
the old service's messages; the provider's API key is never logged or shown.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

from common.singletons import Singleton
from ingest.answers.extractive import Source
from ingest.exceptions import GenerationFailed

logger = logging.getLogger(__name__)

NOT_GENERATED = "Failed to generate an answer. Verify API key, model access, and network."
EMPTY_RESPONSE = "Model returned empty response."
CHARS_PER_TOKEN = 4

SYSTEM = (
    "You answer questions about the user's documents. Use only the numbered sources "
    "given with the question; if they do not contain the answer, say that you could not "
    "find it in the documents. Cite the source of each statement inline with its number "
    "in square brackets, like [1] or [2][3]. Answer in the language of the question, "
    "briefly."
)

_CITATION = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_OLD_CITATION = re.compile(r"\[([^\[\]#]+)#(\d+)\]")  # the old service's [filename#chunkId]


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    sources: list[Source]  # the numbered chunks the prompt holds


def build_prompt(question: str, sources: list[Source], *, budget_tokens: int) -> Prompt:
    """The prompt with as many of the sources (best first) as the token budget holds;
    always at least the best one, cut to fit."""
    budget = budget_tokens * CHARS_PER_TOKEN - len(SYSTEM) - len(question) - 200
    parts: list[str] = []
    given: list[Source] = []
    for source in sources:
        heading = f"[{source.number}] {source.filename}"
        if source.context:
            heading += f" ({source.context})"
        part = f"{heading}\n{source.text}"
        if len(part) > budget:
            if given:
                break
            part = part[: max(budget, 200)]
        parts.append(part)
        given.append(source)
        budget -= len(part) + 2
    user = "Sources:\n\n" + "\n\n".join(parts) + f"\n\nQuestion: {question}"
    return Prompt(SYSTEM, user, given)


def cited(answer: str, sources: list[Source]) -> list[Source]:
    """The given sources the answer cites, in the order of their first citation."""
    by_number = {source.number: source for source in sources}
    by_name = {(source.filename, source.chunk_index): source for source in sources}
    found: dict[int, Source] = {}
    for match in _CITATION.finditer(answer):
        for number in match.group(1).split(","):
            source = by_number.get(int(number))
            if source is not None:
                found.setdefault(source.number, source)
    for match in _OLD_CITATION.finditer(answer):
        source = by_name.get((match.group(1).strip(), int(match.group(2))))
        if source is not None:
            found.setdefault(source.number, source)
    order = {number: answer.find(f"[{number}") for number in found}
    return sorted(found.values(), key=lambda source: (order[source.number] < 0, source.number))


class Generator(Protocol):
    name: str

    async def complete(self, prompt: Prompt) -> str: ...

    def stream(self, prompt: Prompt) -> AsyncIterator[str]: ...


def _failed(provider: str, exc: BaseException) -> GenerationFailed:
    # The type and status only: an SDK's message may quote the request, headers included.
    status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    logger.error("%s generation failed: %s (status %s)", provider, type(exc).__name__, status)
    return GenerationFailed(NOT_GENERATED)


class OpenAIGenerator:
    name = "openai"

    def __init__(self, *, base_url: str, api_key: str, model: str) -> None:
        self.model = model
        self._base_url = base_url
        self._api_key = api_key

    def _client(self) -> Any:
        # One client per request: its connections belong to the event loop that made it.
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            base_url=self._base_url,
            api_key=self._api_key,
            timeout=settings.GENERATION_TIMEOUT,
            max_retries=settings.GENERATION_RETRIES,
        )

    def _messages(self, prompt: Prompt) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ]

    async def complete(self, prompt: Prompt) -> str:
        try:
            response = await self._client().chat.completions.create(
                model=self.model, messages=self._messages(prompt), temperature=0.2
            )
            text = response.choices[0].message.content if response.choices else None
        except Exception as exc:
            raise _failed(self.name, exc) from None
        return _non_empty(text)

    async def stream(self, prompt: Prompt) -> AsyncIterator[str]:
        try:
            stream = await self._client().chat.completions.create(
                model=self.model, messages=self._messages(prompt), temperature=0.2, stream=True
            )
        except Exception as exc:
            raise _failed(self.name, exc) from None
        try:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except Exception as exc:
            raise _failed(self.name, exc) from None
        finally:
            await stream.close()  # a cancelled request stops the model's stream too


class GeminiGenerator:
    name = "gemini"

    def __init__(self, *, api_key: str, model: str, base_url: str = "") -> None:
        from google.genai import types

        self.model = model
        self._types = types
        self._api_key = api_key
        self._options = types.HttpOptions(
            timeout=int(settings.GENERATION_TIMEOUT * 1000),
            retry_options=types.HttpRetryOptions(
                attempts=settings.GENERATION_RETRIES + 1,
                http_status_codes=[408, 429, 500, 502, 503, 504],
            ),
            base_url=base_url or None,
            api_version="v1beta",  # the Gemini API version the old service called
        )

    def _client(self) -> Any:
        # One client per request: its connections belong to the event loop that made it.
        from google import genai

        return genai.Client(api_key=self._api_key, http_options=self._options)

    def _config(self, prompt: Prompt) -> Any:
        return self._types.GenerateContentConfig(system_instruction=prompt.system, temperature=0.2)

    async def complete(self, prompt: Prompt) -> str:
        try:
            response = await self._client().aio.models.generate_content(
                model=self.model, contents=prompt.user, config=self._config(prompt)
            )
            text = response.text
        except Exception as exc:
            raise _failed(self.name, exc) from None
        return _non_empty(text)

    async def stream(self, prompt: Prompt) -> AsyncIterator[str]:
        try:
            stream = await self._client().aio.models.generate_content_stream(
                model=self.model, contents=prompt.user, config=self._config(prompt)
            )
            async for chunk in stream:
                if chunk.text:
                    yield chunk.text
        except Exception as exc:
            raise _failed(self.name, exc) from None


def _non_empty(text: str | None) -> str:
    if not text or not text.strip():
        raise GenerationFailed(EMPTY_RESPONSE)
    return text.strip()


def build_generator() -> Generator | None:
    """The generator ANSWER_GENERATOR names; None for extractive answers."""
    if settings.ANSWER_GENERATOR == "gemini":
        return GeminiGenerator(
            api_key=settings.GOOGLE_API_KEY,
            model=settings.GENERATION_MODEL,
            base_url=settings.GEMINI_BASE_URL,
        )
    if settings.ANSWER_GENERATOR == "openai":
        return OpenAIGenerator(
            base_url=settings.OPENAI_BASE_URL,
            api_key=settings.OPENAI_API_KEY,
            model=settings.OPENAI_MODEL,
        )
    return None


GENERATOR_SETTINGS = {
    "ANSWER_GENERATOR",
    "GOOGLE_API_KEY",
    "GENERATION_MODEL",
    "GEMINI_BASE_URL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_MODEL",
    "GENERATION_TIMEOUT",
    "GENERATION_RETRIES",
}
_generator: Singleton[Generator | None] = Singleton(build_generator, settings=GENERATOR_SETTINGS)
get_generator = _generator.get
