#!/usr/bin/env python3
"""PyTorch peer of bench/training.ts: the same latent operator as src/training/models/operator.ts
(same layers, shapes, parameter count, init scheme, loss and AdamW), timed per training step
(forward + backward + AdamW) on CPU with a given number of intra-op threads. Prints one JSON object.

Usage: torch_operator.py [--threads 1,2] [--steps 30] [--batch 64] [--expect-params N] [--serve]
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG = dict(input_dim=32, hidden_dim=96, depths=[1, 1, 1], group_size=12, num_heads=6, mlp_ratio=2, tokens=32, time_embed_dim=32)


def linear(i, o):
    # Same init as createLinear: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias (PyTorch's default
    # for weights is kaiming_uniform(a=sqrt(5)), which is the same bound).
    lin = nn.Linear(i, o)
    bound = 1 / math.sqrt(i)
    nn.init.uniform_(lin.weight, -bound, bound)
    nn.init.uniform_(lin.bias, -bound, bound)
    return lin


class RmsNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.g = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.g


class Layer(nn.Module):
    """Pre-norm channel-separated group attention (shared q/k/v over groups) + GELU MLP."""

    def __init__(self, c, gs, heads, mlp):
        super().__init__()
        self.c, self.gs, self.heads = c, gs, heads
        self.attn_norm = nn.LayerNorm(c, eps=1e-5)
        self.qkv = linear(gs, 3 * gs)
        self.q_norm = RmsNorm(gs)
        self.k_norm = RmsNorm(gs)
        self.out = linear(gs, gs)
        self.mlp_norm = nn.LayerNorm(c, eps=1e-5)
        self.fc1 = linear(c, mlp)
        self.fc2 = linear(mlp, c)

    def forward(self, x, batch, tokens):
        c, gs, heads = self.c, self.gs, self.heads
        groups, hd = c // gs, gs // heads
        h = self.attn_norm(x).reshape(batch * tokens * groups, gs)
        q, k, v = self.qkv(h).chunk(3, dim=1)
        q, k = self.q_norm(q), self.k_norm(k)

        def heads_of(t):  # [B, T, G, H, hd] -> [B, G, H, T, hd]
            return t.reshape(batch, tokens, groups, heads, hd).permute(0, 2, 3, 1, 4)

        qh, kh, vh = heads_of(q), heads_of(k), heads_of(v)
        scores = torch.matmul(qh, kh.transpose(-1, -2)) / math.sqrt(hd)
        attn = torch.matmul(torch.softmax(scores, -1), vh)
        merged = attn.permute(0, 3, 1, 2, 4).reshape(batch * tokens * groups, gs)
        x1 = x + self.out(merged).reshape(batch * tokens, c)
        return x1 + self.fc2(F.gelu(self.fc1(self.mlp_norm(x1)), approximate='tanh'))


def interpolation_matrix(frm, to):
    m = torch.zeros(frm, to)
    scale = frm / to
    for j in range(to):
        src = max(0.0, (j + 0.5) * scale - 0.5)
        i0 = min(math.floor(src), frm - 1)
        i1 = min(i0 + 1, frm - 1)
        w = src - i0
        m[i0, j] += 1 - w
        m[i1, j] += w
    return m


class LatentOperator(nn.Module):
    def __init__(self, input_dim, hidden_dim, depths, group_size, num_heads, mlp_ratio, tokens, time_embed_dim):
        super().__init__()
        h, d = hidden_dim, input_dim
        mlp = max(1, round(h * mlp_ratio))
        self.h, self.d, self.tokens, self.ted = h, d, tokens, time_embed_dim
        self.time1 = linear(time_embed_dim, h)
        self.time2 = linear(h, d)
        self.input = linear(d, h)
        make = lambda: Layer(h, group_size, num_heads, mlp)  # noqa: E731
        levels = len(depths)
        self.level_tokens = [tokens]
        for _ in range(levels - 1):
            self.level_tokens.append(max(1, math.ceil(self.level_tokens[-1] / 2)))
        self.down = nn.ModuleList()
        self.down_proj = nn.ModuleList()
        for lvl in range(levels - 1):
            self.down.append(nn.ModuleList([make() for _ in range(depths[lvl])]))
            self.down_proj.append(linear(h, h))
        self.bottleneck = nn.ModuleList([make() for _ in range(depths[-1])])
        self.up_proj = nn.ModuleList()
        self.up = nn.ModuleList()
        for lvl in range(levels - 2, -1, -1):
            self.up_proj.append(linear(h, h))
            self.up.append(nn.ModuleList([make() for _ in range(depths[lvl])]))
            self.register_buffer(f'up_mat{len(self.up) - 1}', interpolation_matrix(self.level_tokens[lvl + 1], self.level_tokens[lvl]))
        self.final_norm = nn.LayerNorm(h, eps=1e-5)
        self.output = linear(h, d)
        self.out_norm = nn.LayerNorm(d, eps=1e-5)

    def time_embedding(self, dt):
        half = self.ted // 2
        j = torch.arange(half, dtype=torch.float32)
        freq = torch.exp(-math.log(1000) * j / half)
        arg = dt[:, None] * 1000 * freq[None, :]
        return torch.cat([torch.sin(arg), torch.cos(arg)], 1)

    def downsample(self, x, batch, tokens):
        x3 = x.reshape(batch, tokens, self.h)
        if tokens == 1:
            return x
        if tokens % 2 == 1:
            x3 = torch.cat([x3, x3[:, -1:, :]], 1)
        half = x3.shape[1] // 2
        return x3.reshape(batch, half, 2, self.h).mean(2).reshape(batch * half, self.h)

    def upsample(self, x, batch, frm, to, m):
        if frm == to:
            return x
        xt = x.reshape(batch, frm, self.h).transpose(1, 2).reshape(batch * self.h, frm)
        return (xt @ m).reshape(batch, self.h, to).transpose(1, 2).reshape(batch * to, self.h)

    def forward(self, z, dt):
        batch, tokens, d = z.shape
        temb = self.time2(F.silu(self.time1(self.time_embedding(dt))))
        x = self.input((z + temb[:, None, :]).reshape(batch * tokens, d))
        skips = []
        for lvl, layers in enumerate(self.down):
            t = self.level_tokens[lvl]
            for layer in layers:
                x = layer(x, batch, t)
            skips.append(x)
            x = self.down_proj[lvl](self.downsample(x, batch, t))
        for layer in self.bottleneck:
            x = layer(x, batch, self.level_tokens[-1])
        for u, layers in enumerate(self.up):
            lvl = len(self.down) - 1 - u
            x = self.upsample(x, batch, self.level_tokens[lvl + 1], self.level_tokens[lvl], getattr(self, f'up_mat{u}'))
            x = x + self.up_proj[u](skips[lvl])
            for layer in layers:
                x = layer(x, batch, self.level_tokens[lvl])
        delta = self.out_norm(self.output(self.final_norm(x))).reshape(batch, tokens, d)
        return z + delta


def mm_gflops(threads, n=512, reps=20):
    """Best-of-5 GFLOP/s of an n^3 torch.mm: tells whether an optimised BLAS is linked."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        torch.mm(a, b)
    best = float('inf')
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * n ** 3 / best / 1e9


def make_step(threads, batch):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = LatentOperator(**CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(batch, CONFIG['tokens'], CONFIG['input_dim'], generator=g)
    z1 = torch.randn(batch, CONFIG['tokens'], CONFIG['input_dim'], generator=g)
    dt = torch.full((batch,), 0.1)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(z0, dt), z1)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def time_steps(threads, steps, batch):
    step = make_step(threads, batch)
    for _ in range(3):
        step()
    times, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    # CPU time (all threads of the process) is what a shared, oversubscribed machine distorts least.
    return {'threads': threads, 'steps': steps, 'ms_median': statistics.median(times), 'ms_min': min(times),
            'cpu_ms_median': statistics.median(cpu), 'ms_all': [round(t, 2) for t in times]}


def serve(threads, batch):
    """Paired timing: a line 'N' on stdin runs N steps and answers {"ms": [...]}; 0 or EOF ends."""
    step = make_step(threads, batch)
    for _ in range(3):
        step()
    print(json.dumps({'ready': True, 'torch': torch.__version__}), flush=True)
    for line in sys.stdin:
        n = int(line.strip() or 0)
        if n <= 0:
            break
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1000)
        print(json.dumps({'ms': times}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--serve', action='store_true', help='answer step requests on stdin (paired timing)')
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--expect-params', type=int, default=None)
    args = ap.parse_args()
    params = sum(p.numel() for p in LatentOperator(**CONFIG).parameters())
    if args.expect_params is not None and params != args.expect_params:
        print(json.dumps({'error': f'parameter count {params} != {args.expect_params} (architectures differ)'}))
        sys.exit(1)
    threads = [int(t) for t in args.threads.split(',')]
    if args.serve:
        serve(threads[0], args.batch)
        return
    out = {
        'torch': torch.__version__,
        'blas': 'openblas' if 'openblas' in torch.__config__.show().lower() or os.path.exists('/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3') else 'unknown',
        'param_count': params,
        'batch': args.batch,
        'mm512_gflops_1thread': mm_gflops(1),
        'runs': [time_steps(t, args.steps, args.batch) for t in threads],
    }
    print(json.dumps(out))


if __name__ == '__main__':
    main()
