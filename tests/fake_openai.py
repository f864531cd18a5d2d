"""An OpenAI-compatible `/v1/completions` server in a thread, backed by the HF engine, that injects
faults: the openai engine's conformance tests run against it in-process (no network, seconds).

It speaks the part of the API the engine uses: text or token-id prompts, n, seed, stop, max_tokens,
echo + logprobs (a logprob for every echoed token, the first None), usage, finish_reason. Switches
make it behave like servers that lack a feature (no echo, n ignored, no token-id prompts), or serve
another tokenizer. `faults` is a queue of what the next requests get: "429", "500", "drop" (close
the connection without a reply) or "slow"; `delay` slows every reply.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from cai_bootstrap.engines import Sampling


class FakeOpenAI:
    def __init__(self, engine, *, native_n=True, token_ids=True, echo=True, tokenizer=None, delay=0.0):
        self.engine, self.tok = engine, tokenizer or engine.tok
        self.native_n, self.token_ids, self.echo, self.delay = native_n, token_ids, echo, delay
        self.faults: deque[str] = deque()
        self.lock = threading.Lock()  # counters and the fault queue
        self.model_lock = threading.Lock()  # the model runs one request at a time; waiting happens outside
        self.in_flight = self.max_in_flight = self.requests = self.answered = 0
        self.bodies: list[dict] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def completion(self, body: dict) -> tuple[int, dict]:
        prompt = body["prompt"]
        if isinstance(prompt, list) and not self.token_ids:
            return 400, {"error": {"message": "prompt must be a string"}}
        if body.get("echo") and not self.echo:
            return 400, {"error": {"message": "echo is not supported"}}
        ids = list(prompt) if isinstance(prompt, list) else _ids(self.tok, prompt)
        text = prompt if isinstance(prompt, str) else self.tok.decode(ids, skip_special_tokens=True)
        n = body.get("n", 1) if self.native_n else 1
        sampling = Sampling(
            n=n,
            temperature=body.get("temperature", 1.0),
            top_p=body.get("top_p", 1.0),
            max_new_tokens=body.get("max_tokens", 16),
            stop=body.get("stop") or [],
            seed=body.get("seed", 0),
        )
        with self.model_lock:
            answers = self.engine.generate([text], sampling)[0]
            choices = [self._choice(k, a, ids, text, body) for k, a in enumerate(answers)]
        usage = {"prompt_tokens": len(ids), "completion_tokens": 0, "total_tokens": len(ids)}
        reply = {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": body["model"]}
        return 200, reply | {"choices": choices, "usage": usage}

    def _choice(self, k: int, answer, ids: list[int], text: str, body: dict) -> dict:
        choice = {"index": k, "text": str(answer), "finish_reason": answer.finish_reason, "logprobs": None}
        if body.get("echo"):
            gen = self.tok(str(answer), add_special_tokens=False).input_ids
            choice["text"] = text + str(answer)
            choice["logprobs"] = self._echo_logprobs(ids + gen)
        return choice

    @torch.inference_mode()
    def _echo_logprobs(self, ids: list[int]) -> dict:
        """Every token's logprob under the engine's model (the first has none), as servers echo them."""
        x = torch.tensor([ids])
        logp = torch.log_softmax(self.engine.model(input_ids=x).logits[0].float(), dim=-1)
        values = [None] + [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]
        tokens = [self.tok.decode([i], skip_special_tokens=True) for i in ids]
        offsets, at = [], 0
        for t in tokens:
            offsets.append(at)
            at += len(t)
        return {"tokens": tokens, "token_logprobs": values, "text_offset": offsets, "top_logprobs": None}


def _ids(tok, text: str) -> list[int]:
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    return bos + tok(text, add_special_tokens=False).input_ids


def _handler(server: FakeOpenAI):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send(
                200,
                {
                    "object": "list",
                    "data": [{"id": "tiny", "object": "model", "created": 0, "owned_by": "t"}],
                },
            )

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with server.lock:
                server.requests += 1
                fault = server.faults.popleft() if server.faults else ""
            if fault in ("429", "500"):
                # retry-after-ms keeps the client's backoff short in tests; real servers send seconds.
                return self._send(
                    int(fault), {"error": {"message": f"injected {fault}"}}, {"retry-after-ms": "5"}
                )
            if fault == "drop":
                self.close_connection = True
                return None
            _enter(server)
            try:
                time.sleep(server.delay + (0.3 if fault == "slow" else 0.0))
                status, payload = server.completion(body)
            finally:
                _leave(server)
            if status == 200:
                with server.lock:
                    server.answered += 1
                    server.bodies.append(body)
            return self._send(status, payload)

    return Handler


def _enter(server: FakeOpenAI) -> None:
    with server.lock:
        server.in_flight += 1
        server.max_in_flight = max(server.max_in_flight, server.in_flight)


def _leave(server: FakeOpenAI) -> None:
    with server.lock:
        server.in_flight -= 1
