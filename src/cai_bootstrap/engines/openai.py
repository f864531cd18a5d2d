"""Any OpenAI-compatible server (vLLM, llama-cpp-python, ...) as an engine, over `/v1/completions`.

The official `openai` client does the HTTP work: async requests (at most `max_in_flight` at once),
its own retries with backoff on 429, 5xx, timeouts and dropped connections, honouring Retry-After.
At start the engine probes what the server can do (prompt logprobs through echo + logprobs, native
`n`, token-id prompts) and that its tokenizer is the local model's (same token count for a probe
text); `n` is emulated with seeded requests where the server ignores it. Every answered request is
appended to a cache keyed by the request's hash, so a step killed mid-way resumes without resending.

Scoring sends [bos] + prompt + continuation as token ids with echo=True when the server accepts ids
(exact boundaries, as hf.py scores); otherwise text, and the continuation's tokens are those whose
text offset is at or after the prompt's end (a token straddling the boundary counts to the prompt).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import StepFailed, UserError
from ..log import log, progress
from . import (
    Capabilities,
    Completion,
    Sampling,
    Scored,
    TokenizerMethods,
    continuation_ids,
    cut_at_stop,
    input_ids_for,
    keyenv,
    prompt_ids,
)

# Mixed scripts, digits, spacing and punctuation: two different tokenizers rarely agree on its count.
PROBE = "Tokenizer probe: naïve café, 12345 + 678 = 13023;\n\tsee https://example.org/a_b?x=1 — done."
NO_SCORING = (
    "use vLLM (`vllm serve`) or llama-cpp-python's server (`--logits_all True`) for judging, "
    "or set judge.enabled: false and model.openai.scoring: false"
)


class OpenAISettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str | None = Field(
        None, description="server URL ending in /v1 (e.g. http://127.0.0.1:8000/v1); null: $OPENAI_BASE_URL"
    )
    served_model: str | None = Field(
        None,
        description="the model name the server knows; null: $CAI_OPENAI_MODEL, else the server's only model",
    )
    # The key itself never goes in a recipe: the resolved recipe is copied into the run folder.
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="environment variable holding the API key (unset: 'none', as local servers take)",
    )
    max_in_flight: int = Field(8, ge=1, description="requests in flight at once")
    timeout: float = Field(600.0, gt=0, description="seconds per request before the client retries it")
    max_retries: int = Field(5, ge=0, description="client retries on 429, 5xx, timeouts, dropped connections")
    scoring: bool = Field(
        True,
        description="the run scores continuations here (judge, filters): a server without prompt "
        "logprobs stops the run at start; false: generation only",
    )
    # Servers sample with defaults of their own beyond temperature and top_p: llama-cpp-python's server
    # applies top_k 40, min_p 0.05 and repeat_penalty 1.1 unless told otherwise (measured here: answers
    # of the same round truncated 3 times in 24 instead of the in-process engine's 16). These values turn
    # those filters off, so the server samples the recipe's distribution as hf and vllm do. Both
    # llama-cpp-python and vLLM ignore the fields they do not know (repeat_ vs repetition_penalty).
    sampling_fields: dict[str, float] = Field(
        default_factory=lambda: {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0, "repetition_penalty": 1.0},
        description="extra fields of every generation request that neutralise server-side sampling "
        "defaults (top_k, min_p, repetition penalties); {} for a server that refuses unknown fields",
    )
    trained_models: Literal["hf", "error"] = Field(
        "hf",
        description="what the server does not serve (the models this run trains, and evaluation, which "
        "runs base and trained models alike): 'hf' runs it in-process with transformers, 'error' stops",
    )


class ResultCache:
    """Answered requests by hash, appended one JSON line each; a torn last line is ignored on load."""

    def __init__(self, path: Path | None):
        self.path, self.data = path, {}
        if path is not None and path.exists():
            text = path.read_text()
            if text and not text.endswith("\n"):  # a torn last line: later appends start on a new one
                with path.open("a") as f:
                    f.write("\n")
            for line in text.splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.data[row["key"]] = row["value"]

    @staticmethod
    def key(body: dict) -> str:
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def put(self, key: str, value) -> None:
        self.data[key] = value
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps({"key": key, "value": value}) + "\n")


def _api(body: dict) -> dict:
    """The request's API fields; keys starting with _ are our own bookkeeping (part of the hash), and
    `_extra` holds fields the openai client does not know, sent as its extra_body."""
    return {k: v for k, v in body.items() if not k.startswith("_")}


def _seed(base: int, i: int, j: int) -> int:
    return (base * 1_000_003 + i * 10_007 + j) % 2**31


class OpenAIEngine(TokenizerMethods):
    """Generation and scoring on a server that serves the model whose tokenizer is `tokenizer`."""

    def __init__(self, settings: OpenAISettings, tokenizer, cache_dir: Path | None = None):
        try:
            import openai  # noqa: F401  (a clear error now rather than at the first request)
        except ImportError as e:
            raise UserError(
                "model.engine is openai but the openai client is not installed",
                'pip install "cai-bootstrap[openai]"',
            ) from e

        self.s = settings
        self.tok = tokenizer
        self.base_url = settings.base_url or os.environ.get("OPENAI_BASE_URL")
        if not self.base_url:
            raise UserError(
                "model.engine is openai but no server URL is set",
                "set model.openai.base_url or $OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1)",
            )
        keyenv.check(settings.api_key_env)  # the last guard: preflight checked it too
        self.api_key = os.environ.get(settings.api_key_env) or "none"
        self.model = settings.served_model or os.environ.get("CAI_OPENAI_MODEL") or self._only_model()
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.model)
        self.cache = ResultCache(None if cache_dir is None else Path(cache_dir) / f"openai-{name}.jsonl")
        self.capabilities = self._probe()
        log.info("openai engine %s at %s: %s", self.model, self.base_url, self.capabilities)

    # -- requests ---------------------------------------------------------------------------------

    def _client(self):
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            timeout=self.s.timeout,
            max_retries=self.s.max_retries,
        )

    def _run(self, bodies: list[dict], parse, what: str) -> list:
        """Send every body not in the cache (at most max_in_flight at once); parse(response) -> JSON
        value is cached as it arrives, so a failure keeps what was answered. Results in body order."""
        return asyncio.run(self._send_all(bodies, parse, what))

    async def _send_all(self, bodies: list[dict], parse, what: str) -> list:
        from openai import OpenAIError

        keys = [ResultCache.key({"model": self.model, **b}) for b in bodies]
        todo = sorted({k: b for k, b in zip(keys, bodies, strict=True) if k not in self.cache.data}.items())
        gate = asyncio.Semaphore(self.s.max_in_flight)
        with progress(what, len(todo)) as advance:
            async with self._client() as client:

                async def one(key: str, body: dict) -> None:
                    async with gate:
                        resp = await client.completions.create(
                            model=self.model, **_api(body), extra_body=body.get("_extra") or None
                        )
                    self.cache.put(key, parse(resp, body))
                    advance(1)

                try:
                    await asyncio.gather(*(one(k, b) for k, b in todo))
                except OpenAIError as e:
                    raise StepFailed(
                        f"openai server {self.base_url} failed: {type(e).__name__}: {e}",
                        f"check the server (429, 5xx, timeouts were retried {self.s.max_retries} times); "
                        "answered requests are cached and a re-run resumes",
                    ) from e
        return [self.cache.data[k] for k in keys]

    # -- generation -------------------------------------------------------------------------------

    def generate(self, prompts: list[str], sampling: Sampling) -> list[list[Completion]]:
        """n answers per prompt. Greedy asks once and repeats the answer; sampling asks n at once
        where the server honours n, else n requests seeded (seed, prompt, sample)."""
        greedy = sampling.temperature == 0.0
        per = 1 if greedy or self.capabilities.native_n else sampling.n
        n = 1 if greedy else sampling.n // per
        bodies = [
            self._gen_body(p, sampling, n, _seed(sampling.seed, i, j)) | {"_extra": self.s.sampling_fields}
            for i, p in enumerate(prompts)
            for j in range(per)
        ]
        results = self._run(bodies, self._parse_gen, "generating (openai)")
        out = []
        for i in range(len(prompts)):
            answers = [a for r in results[i * per : (i + 1) * per] for a in r]
            if greedy:
                answers = answers * sampling.n
            if len(answers) != sampling.n:
                raise StepFailed(f"openai server returned {len(answers)} answers for n={sampling.n}")
            out.append([Completion(cut_at_stop(t, sampling.stop), f) for t, f in answers])
        return out

    @staticmethod
    def _gen_body(prompt: str, s: Sampling, n: int, seed: int) -> dict:
        body = {"prompt": prompt, "max_tokens": s.max_new_tokens, "temperature": s.temperature, "n": n}
        body |= {"top_p": s.top_p, "seed": seed} | ({"stop": list(s.stop)} if s.stop else {})
        return body

    @staticmethod
    def _parse_gen(resp, body: dict) -> list[tuple[str, str]]:
        choices = sorted(resp.choices, key=lambda c: c.index)
        return [(c.text, "length" if c.finish_reason == "length" else "stop") for c in choices]

    # -- scoring ----------------------------------------------------------------------------------

    def logprobs(self, prompts: list[Scored], continuations: list[Scored]) -> list[float]:
        """Sum of log p(continuation | prompt) from the server's echoed prompt logprobs."""
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")
        if not self.capabilities.prompt_logprobs:
            raise UserError(f"the server at {self.base_url} does not return prompt logprobs", NO_SCORING)
        bodies = [self._score_body(p, c) for p, c in zip(prompts, continuations, strict=True)]
        return self._run(bodies, self._parse_score, "scoring (openai)")

    def _score_body(self, p: Scored, c: Scored) -> dict:
        body = {"echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0.0}
        if self.capabilities.token_ids:
            p_ids, c_ids = prompt_ids(self.tok, p), continuation_ids(self.tok, c)
            return body | {"prompt": p_ids + c_ids, "_score_ids": [len(p_ids), len(p_ids) + len(c_ids)]}
        if isinstance(p, list) or isinstance(c, list):
            raise UserError(f"the server at {self.base_url} takes no token-id prompts", "score text with it")
        return body | {"prompt": p + c, "_score_chars": [len(p), len(p) + len(c)]}

    @staticmethod
    def _parse_score(resp, body: dict) -> float:
        lp = resp.choices[0].logprobs
        if lp is None or not lp.token_logprobs:
            raise StepFailed("the server returned no prompt logprobs for an echo request")
        if "_score_ids" in body:
            a, b = body["_score_ids"]
            picked = lp.token_logprobs[a:b]
        else:
            a, b = body["_score_chars"]
            picked = [x for x, off in zip(lp.token_logprobs, lp.text_offset, strict=False) if a <= off < b]
        if any(x is None for x in picked) or (b > a and not picked):
            raise StepFailed("the server's echoed logprobs do not cover the continuation")
        return float(sum(picked))

    # -- start-up checks ---------------------------------------------------------------------------

    def _only_model(self) -> str:
        from openai import OpenAI, OpenAIError

        try:
            with OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=30, max_retries=2) as c:
                names = [m.id for m in c.models.list()]
        except OpenAIError as e:
            raise UserError(
                f"cannot reach the openai server at {self.base_url}: {e}", "start it or fix base_url"
            ) from e
        if len(names) != 1:
            raise UserError(
                f"the server at {self.base_url} serves {names or 'no models'}",
                "name one in model.openai.served_model or $CAI_OPENAI_MODEL",
            )
        return names[0]

    def _probe(self) -> Capabilities:
        """Ask the server what it does: echo + logprobs on a probe text (and its token count against
        the local tokenizer), the same as token ids, and n=2."""
        return asyncio.run(self._probe_async())

    async def _probe_async(self) -> Capabilities:
        from openai import APIConnectionError, APIStatusError, OpenAIError

        local = input_ids_for(self.tok, PROBE)
        echo = {"echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0.0}
        async with self._client() as client:

            async def ask(optional: bool = False, **body):
                try:
                    return await client.completions.create(model=self.model, **body)
                except APIStatusError as e:
                    # 400/404/422/501: the server refuses this kind of request. An optional capability
                    # (token-id prompts, n) may also fail with a 500: llama-cpp-python's server answers a
                    # token-id prompt with "500 - validation errors" (seen with 0.3.36).
                    if e.status_code in (400, 404, 422, 501) or optional:
                        return None
                    raise UserError(
                        f"the openai server at {self.base_url} failed a start-up probe: {e}"
                    ) from e
                except (APIConnectionError, OpenAIError) as e:
                    raise UserError(
                        f"cannot reach the openai server at {self.base_url}: {e}", "start it or fix base_url"
                    ) from e

            self._check_tokenizer(await ask(prompt=PROBE, max_tokens=1, temperature=0.0), len(local))
            text = await ask(prompt=PROBE, **echo)
            by_ids = await ask(optional=True, prompt=local, **echo)
            two = await ask(optional=True, prompt=PROBE, n=2, max_tokens=1, temperature=1.0, seed=0)
        scores = text is not None and _echoed(text, len(local))
        caps = Capabilities(
            prompt_logprobs=scores,
            native_n=two is not None and len(two.choices) == 2,
            token_ids=by_ids is not None
            and _echoed(by_ids, len(local))
            and _prompt_tokens(by_ids) == len(local),
        )
        if self.s.scoring and not caps.prompt_logprobs:
            raise UserError(f"the server at {self.base_url} does not return prompt logprobs", NO_SCORING)
        return caps

    def _check_tokenizer(self, resp, local: int) -> None:
        """Refuse a server whose tokenizer is not the model's: scores and budgets would not match."""
        served = None if resp is None else _prompt_tokens(resp)
        if served is None:
            raise UserError(
                f"the server at {self.base_url} reports no prompt token count, so its tokenizer cannot be checked",
                "serve the model with vLLM or llama-cpp-python's server",
            )
        if served != local:
            raise UserError(
                f"the server's tokenizer is not the model's: a probe text is {served} tokens there, "
                f"{local} here (with BOS)",
                "serve the same model as model.generator (same tokenizer files), or point served_model at it",
            )


def _prompt_tokens(resp) -> int | None:
    usage = getattr(resp, "usage", None)
    return None if usage is None else usage.prompt_tokens


def _echoed(resp, prompt_tokens: int) -> bool:
    """The reply carries a logprob for every prompt token after the first."""
    lp = resp.choices[0].logprobs if resp.choices else None
    if lp is None or lp.token_logprobs is None or len(lp.token_logprobs) < prompt_tokens:
        return False
    return all(x is not None for x in lp.token_logprobs[1:prompt_tokens])
