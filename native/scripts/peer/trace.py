"""The trace, the prompt ids and the level plan: the same arithmetic as gyre_bench.cc, so both
sides replay the same requests with the same token ids."""
import json
import math

from peer.shapes import VOCAB

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(x):
    x = (x + GOLDEN) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


class Rng:
    def __init__(self, seed):
        self.state = seed & M64

    def next(self):
        v = splitmix64(self.state)
        self.state = (self.state + GOLDEN) & M64
        return v

    def uniform(self):
        return (self.next() >> 11) * (1.0 / 9007199254740992.0)

    def normal(self):
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def lround(x):
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def generate_trace(seed, n):
    out = []
    for i in range(n):
        r = Rng(splitmix64((seed * 1000003 + i) & M64))
        user = max(1, lround(200.0 * math.exp(0.8 * r.normal())))
        system = r.uniform() < 0.5
        prompt = min(960, user + 12 + (110 if system else 0))
        output = min(80, max(8, lround(40.0 * math.exp(0.5 * r.normal()))))
        out.append((prompt, output))
    return out


def read_trace(path):
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            d = json.loads(line)
            p, o = int(d["prompt_tokens"]), int(d["output_tokens"])
            if p < 1 or o < 1:
                raise ValueError(f"{path}:{n}: needs positive prompt_tokens and output_tokens")
            out.append((p, o))
    if not out:
        raise ValueError(f"{path}: no requests")
    return out


def prompt_token(k, j, vocab=VOCAB):
    return 3 + splitmix64(((k << 20) | j) & M64) % (vocab - 3)


def prompt_ids(k, n, vocab=VOCAB):
    return [prompt_token(k, j, vocab) for j in range(n)]


def level_plan(users, min_requests, per_user):
    """[(users, requests, first request number k0)] in order: one cursor over all levels."""
    plan, k = [], 0
    for n in users:
        count = max(min_requests, per_user * n)
        plan.append((n, count, k))
        k += count
    return plan
