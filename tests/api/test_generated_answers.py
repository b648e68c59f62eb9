"""Generated answers: each provider's SDK pointed at a local HTTP server that speaks that
provider's wire protocol (pytest-httpserver), checking the requests the service sends and
how it treats real-shaped responses."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from urllib.parse import urlsplit

import orjson
import pytest
from werkzeug import Request, Response

from ingest.answers.extractive import NO_ANSWER
from ingest.answers.generation import EMPTY_RESPONSE, NOT_GENERATED
from tests.support.client import ingest

SECRET = "sk-test-0123456789-secret"
EXPENSES = (
    "# Expense policy\n\n## Travel\n\nTravel expenses are reimbursed within 30 days of the "
    "trip. Submit the expense form with your receipts.\n"
)
PARKING = "# Parking\n\nEmployees park in lot B behind the main building.\n"
QUESTION = "When are travel expenses reimbursed?"


def completion(text: str | None) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def completion_stream(tokens: list[str], *, pause: float = 0.0, sent: list | None = None):
    def handler(request: Request) -> Response:
        def body():
            for number, token in enumerate(tokens):
                if number and pause:
                    time.sleep(pause)
                chunk = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 1_700_000_000,
                    "model": "test-model",
                    "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}],
                }
                if sent is not None:
                    sent.append((token, time.monotonic()))
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return Response(body(), content_type="text/event-stream")

    return handler


def gemini_response(text: str) -> dict:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
        ],
        "modelVersion": "gemini-2.5-flash",
    }


def events(body: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in body.decode().split("\n\n"):
        if block.strip():
            lines = dict(line.split(": ", 1) for line in block.split("\n"))
            out.append((lines["event"], orjson.loads(lines["data"])))
    return out


@pytest.fixture
def handbook(api, registry_mode) -> dict[str, dict]:
    return {
        "expenses": ingest(api, "expenses.md", EXPENSES),
        "parking": ingest(api, "parking.md", PARKING),
    }


@pytest.fixture
def openai_model(settings, httpserver):
    settings.ANSWER_GENERATOR = "openai"
    settings.OPENAI_BASE_URL = httpserver.url_for("/v1")
    settings.OPENAI_API_KEY = SECRET
    settings.OPENAI_MODEL = "test-model"
    settings.GENERATION_RETRIES = 1
    settings.GENERATION_TIMEOUT = 2
    return httpserver


@pytest.fixture
def gemini_model(settings, httpserver):
    settings.ANSWER_GENERATOR = "gemini"
    settings.GEMINI_BASE_URL = httpserver.url_for("/")
    settings.GOOGLE_API_KEY = SECRET
    settings.GENERATION_MODEL = "gemini-2.5-flash"
    settings.GENERATION_RETRIES = 1
    settings.GENERATION_TIMEOUT = 2
    return httpserver


def post_ask(api, question: str = QUESTION, **extra):
    return api.post("/ask", {"q": question, **extra}, content_type="application/json")


class TestOpenAI:
    def test_the_answer_cites_the_numbered_chunks_it_was_given(self, api, handbook, openai_model):
        openai_model.expect_request("/v1/chat/completions", method="POST").respond_with_json(
            completion("Travel expenses are reimbursed within 30 days [1], not [7].")
        )
        response = post_ask(api)
        assert response.status_code == 200
        body = response.json()
        assert body["answer"] == "Travel expenses are reimbursed within 30 days [1], not [7]."
        assert [(s["filename"], s["chunkId"], s["number"]) for s in body["sources"]] == [
            ("expenses.md", 0, 1)
        ]
        assert body["sources"][0]["fileId"] == handbook["expenses"]["fileId"]

        ((request, _),) = openai_model.log
        assert request.headers["Authorization"] == f"Bearer {SECRET}"
        sent = request.get_json()
        assert sent["model"] == "test-model"
        system, user = sent["messages"]
        assert system["role"] == "system" and "[1]" in system["content"]
        assert "[1] expenses.md (Expense policy > Travel)" in user["content"]
        assert "reimbursed within 30 days of the trip" in user["content"]
        assert user["content"].endswith(f"Question: {QUESTION}")
        assert "lot B" not in user["content"]  # only chunks about the question
        assert SECRET not in response.content.decode()

    def test_a_question_with_nothing_relevant_never_reaches_the_model(
        self, api, handbook, openai_model
    ):
        body = post_ask(api, "What is the boiling point of mercury?").json()
        assert body == {"answer": NO_ANSWER, "sources": []}
        assert openai_model.log == []

    def test_an_empty_response_is_a_502(self, api, handbook, openai_model):
        openai_model.expect_request("/v1/chat/completions").respond_with_json(completion(""))
        response = post_ask(api)
        assert (response.status_code, response.json()) == (502, {"detail": EMPTY_RESPONSE})

    def test_a_429_is_retried(self, api, handbook, openai_model):
        openai_model.expect_ordered_request("/v1/chat/completions").respond_with_json(
            {"error": {"message": "rate limited", "type": "rate_limit"}},
            status=429,
            headers={"retry-after-ms": "10"},
        )
        openai_model.expect_ordered_request("/v1/chat/completions").respond_with_json(
            completion("Within 30 days [1].")
        )
        response = post_ask(api)
        assert response.status_code == 200 and response.json()["answer"] == "Within 30 days [1]."
        assert len(openai_model.log) == 2

    def test_a_server_error_is_a_502_that_never_shows_the_key(
        self, api, handbook, openai_model, caplog
    ):
        openai_model.expect_request("/v1/chat/completions").respond_with_json(
            {"error": {"message": f"boom for key {SECRET}"}}, status=500
        )
        with caplog.at_level(logging.DEBUG):
            response = post_ask(api)
        assert (response.status_code, response.json()) == (502, {"detail": NOT_GENERATED})
        assert len(openai_model.log) == 2  # tried, retried once (GENERATION_RETRIES=1)
        assert SECRET not in caplog.text and SECRET not in response.content.decode()

    def test_a_model_that_does_not_answer_in_time_is_a_502(
        self, api, handbook, openai_model, settings
    ):
        settings.GENERATION_RETRIES = 0
        settings.GENERATION_TIMEOUT = 1

        release = threading.Event()

        def slow(request: Request) -> Response:
            release.wait(30)
            return Response(json.dumps(completion("late")), content_type="application/json")

        openai_model.expect_request("/v1/chat/completions").respond_with_handler(slow)
        started = time.monotonic()
        response = post_ask(api)
        elapsed = time.monotonic() - started
        release.set()  # let the stalled handler finish inside this test
        assert (response.status_code, response.json()) == (502, {"detail": NOT_GENERATED})
        assert elapsed < 15  # GENERATION_TIMEOUT (1 s), not the 30 s the model stalls
        deadline = time.monotonic() + 5
        while not openai_model.log and time.monotonic() < deadline:
            time.sleep(0.01)

    def test_a_streamed_answer_is_server_sent_events(self, api, handbook, openai_model):
        openai_model.expect_request("/v1/chat/completions").respond_with_handler(
            completion_stream(["Within ", "30 days ", "[1]."])
        )
        response = post_ask(api, stream=True)
        assert response.status_code == 200
        assert response["Content-Type"] == "text/event-stream"
        got = events(b"".join(response))
        assert [name for name, _ in got] == ["sources", "token", "token", "token", "done"]
        assert got[0][1]["sources"][0]["filename"] == "expenses.md"
        assert "".join(data["text"] for name, data in got if name == "token") == (
            "Within 30 days [1]."
        )
        assert got[-1][1]["answer"] == "Within 30 days [1]."
        assert [s["number"] for s in got[-1][1]["sources"]] == [1]
        assert [r.get_json().get("stream") for r, _ in openai_model.log] == [True], [
            r.get_json() for r, _ in openai_model.log
        ]

    def test_accept_event_stream_streams_too_and_a_failure_is_an_error_event(
        self, api, handbook, openai_model
    ):
        openai_model.expect_request("/v1/chat/completions").respond_with_json(
            {"error": {"message": "down"}}, status=503
        )
        response = api.post(
            "/ask",
            {"q": QUESTION},
            content_type="application/json",
            HTTP_ACCEPT="text/event-stream",
        )
        got = events(b"".join(response))
        assert [name for name, _ in got] == ["sources", "error"]
        assert got[-1][1] == {"status": 502, "detail": NOT_GENERATED}


class TestGemini:
    path = "/v1beta/models/gemini-2.5-flash:generateContent"

    def test_the_answer_comes_from_gemini_with_the_old_variables(self, api, handbook, gemini_model):
        gemini_model.expect_request(self.path, method="POST").respond_with_json(
            gemini_response("Travel expenses are reimbursed within 30 days [1].")
        )
        body = post_ask(api).json()
        assert body["answer"] == "Travel expenses are reimbursed within 30 days [1]."
        assert [s["filename"] for s in body["sources"]] == ["expenses.md"]
        ((request, _),) = gemini_model.log
        assert request.headers["x-goog-api-key"] == SECRET
        sent = request.get_json()
        text = sent["contents"][0]["parts"][0]["text"]
        assert "[1] expenses.md" in text and text.endswith(f"Question: {QUESTION}")
        assert "[1]" in sent["systemInstruction"]["parts"][0]["text"]

    def test_a_streamed_gemini_answer(self, api, handbook, gemini_model):
        def stream(request: Request) -> Response:
            parts = ["Within 30 days ", "[1]."]
            body = "".join(f"data: {json.dumps(gemini_response(p))}\r\n\r\n" for p in parts)
            return Response(body, content_type="text/event-stream")

        gemini_model.expect_request(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
        ).respond_with_handler(stream)
        got = events(b"".join(post_ask(api, stream=True)))
        assert [name for name, _ in got] == ["sources", "token", "token", "done"]
        assert got[-1][1]["answer"] == "Within 30 days [1]."

    def test_a_gemini_failure_is_a_502(self, api, handbook, gemini_model):
        gemini_model.expect_request(self.path).respond_with_json(
            {"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}, status=500
        )
        response = post_ask(api)
        assert (response.status_code, response.json()) == (502, {"detail": NOT_GENERATED})

    def test_an_empty_gemini_response_is_a_502(self, api, handbook, gemini_model):
        gemini_model.expect_request(self.path).respond_with_json({"candidates": []})
        response = post_ask(api)
        assert (response.status_code, response.json()) == (502, {"detail": EMPTY_RESPONSE})

    def test_a_429_is_retried(self, api, handbook, gemini_model):
        gemini_model.expect_ordered_request(self.path).respond_with_json(
            {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}},
            status=429,
        )
        gemini_model.expect_ordered_request(self.path).respond_with_json(
            gemini_response("Within 30 days [1].")
        )
        response = post_ask(api)
        assert (response.status_code, response.json()["answer"]) == (200, "Within 30 days [1].")
        assert len(gemini_model.log) == 2

    def test_a_model_that_does_not_answer_in_time_is_a_502(
        self, api, handbook, gemini_model, settings
    ):
        settings.GENERATION_RETRIES = 0
        settings.GENERATION_TIMEOUT = 1
        release = threading.Event()

        def slow(request: Request) -> Response:
            release.wait(30)
            return Response(json.dumps(gemini_response("late")), content_type="application/json")

        gemini_model.expect_request(self.path).respond_with_handler(slow)
        started = time.monotonic()
        response = post_ask(api)
        elapsed = time.monotonic() - started
        release.set()
        assert (response.status_code, response.json()) == (502, {"detail": NOT_GENERATED})
        assert elapsed < 15  # GENERATION_TIMEOUT (1 s), not the 30 s the model stalls
        deadline = time.monotonic() + 5
        while not gemini_model.log and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_a_streamed_answer_arrives_token_by_token_under_gunicorn(start_live_service, httpserver):
    sent: list[tuple[str, float]] = []
    tokens = ["Travel ", "expenses ", "are ", "reimbursed ", "within 30 days [1]."]
    httpserver.expect_request("/v1/chat/completions").respond_with_handler(
        completion_stream(tokens, pause=0.4, sent=sent)
    )
    service = start_live_service(
        ANSWER_GENERATOR="openai",
        OPENAI_BASE_URL=httpserver.url_for("/v1"),
        OPENAI_API_KEY=SECRET,
        OPENAI_MODEL="test-model",
    )
    status, _ = service.post_file("expenses.md", EXPENSES.encode())
    assert status == 200
    parts = urlsplit(service.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request(
        "POST",
        "/ask",
        orjson.dumps({"q": QUESTION, "stream": True}),
        {"Content-Type": "application/json", "X-API-Key": service.api_key},
    )
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    received: list[tuple[str, float]] = []
    while True:
        line = response.readline()
        if not line:
            break
        if line.startswith(b"event: "):
            received.append((line[7:].strip().decode(), time.monotonic()))
    connection.close()
    names = [name for name, _ in received]
    assert names == ["sources"] + ["token"] * len(tokens) + ["done"]
    first_token_at = received[1][1]
    last_token_sent_at = sent[-1][1]
    assert first_token_at < last_token_sent_at  # the client saw tokens as they came


@pytest.mark.django_db(transaction=True)
def test_a_client_that_hangs_up_stops_the_model(start_live_service, httpserver):
    sent: list[tuple[str, float]] = []
    tokens = [f"token{n} " for n in range(12)]
    httpserver.expect_request("/v1/chat/completions").respond_with_handler(
        completion_stream(tokens, pause=0.3, sent=sent)
    )
    service = start_live_service(
        ANSWER_GENERATOR="openai",
        OPENAI_BASE_URL=httpserver.url_for("/v1"),
        OPENAI_API_KEY=SECRET,
        OPENAI_MODEL="test-model",
    )
    assert service.post_file("expenses.md", EXPENSES.encode())[0] == 200
    parts = urlsplit(service.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request(
        "POST",
        "/ask",
        orjson.dumps({"q": QUESTION}),
        {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "X-API-Key": service.api_key,
        },
    )
    response = connection.getresponse()
    while not response.readline().startswith(b"event: token"):
        pass
    connection.sock.shutdown(2)  # the client goes away after its first token
    connection.close()
    time.sleep(12 * 0.3 + 1)  # as long as the whole answer would have taken
    assert 0 < len(sent) < len(tokens), sent  # the model's stream was closed early


class TestGeminiEmbeddings:
    path = "/v1beta/models/text-embedding-004:batchEmbedContents"

    @pytest.fixture
    def embedder(self, settings, httpserver):
        from ingest.search.embeddings import build_embedder

        settings.GOOGLE_API_KEY = SECRET
        settings.GEMINI_BASE_URL = httpserver.url_for("/")
        settings.GENERATION_RETRIES = 1
        settings.GENERATION_TIMEOUT = 5
        return build_embedder("gemini")

    @staticmethod
    def answer_each(request: Request) -> Response:
        sent = request.get_json()["requests"]
        values = [[float(len(r["content"]["parts"][0]["text"]))] + [1.0] * 767 for r in sent]
        return Response(
            json.dumps({"embeddings": [{"values": v} for v in values]}),
            content_type="application/json",
        )

    def test_texts_go_in_batches_of_100_and_come_back_normalised(self, embedder, httpserver):
        httpserver.expect_request(self.path, method="POST").respond_with_handler(self.answer_each)
        texts = [f"text {'x' * n}" for n in range(150)]
        vectors = embedder.embed(texts)
        assert vectors.shape == (150, 768) and embedder.name == "gemini-text-embedding-004"
        assert [len(r.get_json()["requests"]) for r, _ in httpserver.log] == [100, 50]
        assert all(r.headers["x-goog-api-key"] == SECRET for r, _ in httpserver.log)
        assert abs(float(vectors[3] @ vectors[3]) - 1.0) < 1e-5
        assert vectors[149][0] > vectors[0][0]  # each row is its own text's

    def test_a_429_is_retried(self, embedder, httpserver):
        httpserver.expect_ordered_request(self.path).respond_with_json(
            {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}},
            status=429,
        )
        httpserver.expect_ordered_request(self.path).respond_with_handler(self.answer_each)
        assert embedder.embed(["one", "two"]).shape == (2, 768)
        assert len(httpserver.log) == 2

    def test_a_failure_says_what_to_check_without_the_key(self, embedder, httpserver):
        from ingest.exceptions import EmbedderUnavailable

        httpserver.expect_request(self.path).respond_with_json(
            {"error": {"code": 403, "message": f"bad key {SECRET}"}}, status=403
        )
        with pytest.raises(EmbedderUnavailable) as failure:
            embedder.embed(["one"])
        assert "GOOGLE_API_KEY" in str(failure.value) and SECRET not in str(failure.value)
