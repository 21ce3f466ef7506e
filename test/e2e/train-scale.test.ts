/**
 * Training at PDEBench scale on CI's two cores: one `tensor` dataset of 2700 x 201 x 1024 float32
 * (2.2 GB, more than 2^31 bytes; a sparse file, 16 samples written), trained without
 * data.max_samples under a 16 MB memory budget for a few hundred steps (autoencoder on streamed
 * frames, operator on a latent cache of 28 MB read from disk). Peak RSS must stay far below the data's size.
 */
import assert from 'node:assert/strict'
import {mkdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {runCli, tempDir} from '../helpers.js'
import {writeSparseTensorFile} from '../fixtures/sparse-h5.js'

const N = 2700
const NT = 201
const NX = 1024
/** Peak RSS allowed: the data alone is 2.2 GB. */
const MAX_RSS_MB = 1500

const config = `seed: 1
data: {task: burgers1d, root: data, memory_budget_mb: 16}
latent: {dim: 16, tokens: 32}
autoencoder: {hidden_dim: 16, num_layers: 1, fourier_features: 0}
operator:
  pdet: {hidden_dim: 8, depths: [1], group_size: 4, num_heads: 2, mlp_ratio: 1.0}
diffusion: {hidden_dim: 8, num_layers: 1, time_embed_dim: 8}
training: {batch_size: 32, time_stride: 50, dt: 0.5, val_fraction: 0.05, ema_decay: null, checkpoint_interval: 0}
optimizer: {name: adamw, lr: 1.0e-3}
scheduler: {name: none}
stages:
  autoencoder: {epochs: 1}
  operator: {epochs: 1, batch_size: 64}
  diff_residual: {epochs: 0}
  consistency_distill: {epochs: 0}
  steady_prior: {epochs: 0}
`

describe('ups train at scale', () => {
  it('trains on a 2.2 GB dataset streamed under a 16 MB budget with bounded memory', async (t) => {
    const cwd = await tempDir(t)
    await mkdir(join(cwd, 'data'))
    const path = join(cwd, 'data', 'burgers1d_train.h5')
    const first = Float32Array.from({length: 16 * NT * NX}, (_, i) => Math.sin((2 * Math.PI * (i % NX)) / NX + Math.floor(i / (NT * NX))) * Math.exp(-0.002 * (Math.floor(i / NX) % NT)))
    const {bytes} = await writeSparseTensorFile(path, {n: N, nt: NT, nx: NX, first})
    assert.ok(bytes >= 2 ** 31, `${bytes} bytes`)
    assert.equal((await stat(path)).size, bytes)
    await writeFile(join(cwd, 'scale.yaml'), config)

    const r = await runCli(['train', 'scale.yaml', '--backend', 'wasm', '--run-dir', 'run', '--json'], {cwd, env: {UPS_TRAIN_WORKERS: '1'}, timeoutMs: 600_000})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /streamed from disk in blocks of \d+ trajectories/)
    assert.match(r.stderr, /Latent cache .*read from disk in blocks/)
    const result = JSON.parse(r.stdout)
    const steps = Object.fromEntries(result.stages.map((s: {stage: string; steps: number}) => [s.stage, s.steps]))
    // 2565 train trajectories x 5 frames / 32 and x 4 pairs / 64.
    assert.equal(steps.autoencoder, Math.ceil((2565 * 5) / 32))
    assert.equal(steps.operator, Math.ceil((2565 * 4) / 64))
    const meta = JSON.parse(await readFile(join(cwd, 'run', 'metadata.json'), 'utf8'))
    const peak = meta.training.peak_rss_mb
    t.diagnostic(`peak RSS ${peak} MB for a ${(bytes / 1e9).toFixed(2)} GB dataset; ${result.seconds.toFixed(1)} s`)
    assert.ok(peak > 0 && peak < MAX_RSS_MB, `peak RSS ${peak} MB`)
    assert.equal(meta.training.streamed.memory_budget_mb, 16)
  })
})
