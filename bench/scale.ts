/**
 * Scale benchmark: the full PDEBench Burgers layout, `tensor` 10000 x 201 x 1024 float32 (8.2 GB
 * in one dataset; a sparse file with 64 samples written, the rest holes of zeros), read through
 * our Dataset in training's block pattern, then trained by the built CLI (`ups train`) without
 * data.max_samples under a small data.memory_budget_mb: autoencoder on streamed frames, operator on
 * a latent cache read from disk. Figures: read throughput, training samples/s per stage, peak RSS.
 * Knobs: UPS_BENCH_SCALE_N (samples, default 10000), UPS_BENCH_SCALE_STRIDE (time stride, default
 * 50: 5 frames per trajectory keeps it to minutes), UPS_BENCH_SCALE_BUDGET_MB (default 64).
 * Needs `npm run build`; run with `npm run bench -- scale`.
 */
import {spawnSync} from 'node:child_process'
import {closeSync, openSync, readSync} from 'node:fs'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {openDataset} from '../src/data/index.js'
import {writeSparseTensorFile} from '../test/fixtures/sparse-h5.js'

const NT = 201
const NX = 1024
const ROOT = fileURLToPath(new URL('..', import.meta.url))

export async function benchScale(): Promise<Record<string, unknown>> {
  const n = Number(process.env.UPS_BENCH_SCALE_N ?? 10_000)
  const stride = Number(process.env.UPS_BENCH_SCALE_STRIDE ?? 50)
  const budgetMb = Number(process.env.UPS_BENCH_SCALE_BUDGET_MB ?? 64)
  const dir = await mkdtemp(join(tmpdir(), 'ups-bench-scale-'))
  try {
    await mkdir(join(dir, 'data'))
    const path = join(dir, 'data', 'burgers1d_train.h5')
    const written = 64
    const first = Float32Array.from({length: written * NT * NX}, (_, i) => Math.sin((2 * Math.PI * (i % NX)) / NX + Math.floor(i / (NT * NX))) * Math.exp(-0.002 * (Math.floor(i / NX) % NT)))
    const {bytes} = await writeSparseTensorFile(path, {n, nt: NT, nx: NX, first})
    const onDisk = spawnSync('du', ['-k', path], {encoding: 'utf8'}).stdout.split('\t')[0]

    // Read throughput in training's pattern: consecutive blocks of trajectories, one read each,
    // against plain sequential readSync of as many bytes in the same run (the file's last GiB, so
    // neither profits from the other's page cache). Holes of a sparse file read at whatever rate
    // the filesystem gives: the reference says what that is on this machine.
    const read = async (timeStride: number, samples: number): Promise<{mb_per_s: number; seconds: number; gb: number}> => {
      const ds = await openDataset(join(dir, 'data'), 'burgers1d', 'train', {timeStride})
      const perTraj = ds.sampleShape.reduce((a, b) => a * b, 1) * 4
      const block = Math.max(1, Math.floor((budgetMb * 2 ** 20) / 4 / perTraj))
      const end = Math.min(samples, ds.numSamples)
      const t0 = performance.now()
      let sum = 0
      for (let a = 0; a < end; a += block) sum += ds.readSamples(a, Math.min(end, a + block)).data[0]
      const seconds = (performance.now() - t0) / 1000
      ds.close()
      if (!Number.isFinite(sum)) throw new Error('bad read')
      const total = end * perTraj
      return {mb_per_s: Math.round(total / 1e6 / seconds), seconds: Number(seconds.toFixed(2)), gb: Number((total / 1e9).toFixed(2))}
    }
    const plain = (bytesToRead: number): {mb_per_s: number; seconds: number; gb: number} => {
      const fd = openSync(path, 'r')
      const chunk = Math.floor((budgetMb * 2 ** 20) / 4)
      const buf = Buffer.allocUnsafeSlow(chunk)
      const t0 = performance.now()
      for (let at = bytes - bytesToRead; at < bytes; at += chunk) readSync(fd, buf, 0, Math.min(chunk, bytes - at), at)
      const seconds = (performance.now() - t0) / 1000
      closeSync(fd)
      return {mb_per_s: Math.round(bytesToRead / 1e6 / seconds), seconds: Number(seconds.toFixed(2)), gb: Number((bytesToRead / 1e9).toFixed(2))}
    }
    const sliceSamples = Math.min(n, Math.ceil(2 ** 30 / (NT * NX * 4)))
    const ours = await read(1, sliceSamples)
    const reference = plain(sliceSamples * NT * NX * 4)
    const readStrided = await read(stride, n)
    console.log(`read 1 GiB: ours ${ours.mb_per_s} MB/s, plain readSync ${reference.mb_per_s} MB/s; stride ${stride} over all ${n} samples: ${readStrided.mb_per_s} MB/s`)

    const config = `seed: 1
data: {task: burgers1d, root: data, memory_budget_mb: ${budgetMb}}
latent: {dim: 16, tokens: 32}
autoencoder: {hidden_dim: 32, num_layers: 1, fourier_features: 0}
operator:
  pdet: {hidden_dim: 16, depths: [1], group_size: 8, num_heads: 2, mlp_ratio: 1.0}
diffusion: {hidden_dim: 8, num_layers: 1, time_embed_dim: 8}
training: {batch_size: 64, time_stride: ${stride}, dt: 0.5, val_fraction: 0.02, ema_decay: null, checkpoint_interval: 0}
optimizer: {name: adamw, lr: 1.0e-3}
scheduler: {name: none}
stages:
  autoencoder: {epochs: 1}
  operator: {epochs: 1}
  diff_residual: {epochs: 0}
  consistency_distill: {epochs: 0}
  steady_prior: {epochs: 0}
`
    await writeFile(join(dir, 'scale.yaml'), config)
    const t0 = performance.now()
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'run.js'), 'train', 'scale.yaml', '--backend', 'wasm', '--run-dir', 'run', '--json'], {
      cwd: dir, encoding: 'utf8', env: {...process.env, UPS_TRAIN_WORKERS: '1'}, maxBuffer: 64 * 2 ** 20,
    })
    const wall = (performance.now() - t0) / 1000
    if (r.status !== 0) throw new Error(`ups train failed (${r.status}): ${r.stderr.split('\n').slice(-5).join('\n')}`)
    const meta = JSON.parse(await readFile(join(dir, 'run', 'metadata.json'), 'utf8'))
    const log = (await readFile(join(dir, 'run', 'logs', 'training.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l))
    const stage = (s: string) => {
      const l = log.find((x) => x.stage === s)
      return {samples_per_s: Math.round(l[`${s}/samples_per_sec`]), epoch_seconds: Number(l[`${s}/epoch_time_sec`].toFixed(1)), steps: JSON.parse(r.stdout).stages.find((x: {stage: string}) => x.stage === s).steps}
    }
    const cacheLine = r.stderr.split('\n').find((l) => /Latent cache .*burgers1d_train.*: (built|reused)/.test(l)) ?? ''
    const figures = {
      dataset: {shape: [n, NT, NX], dtype: 'float32', bytes, on_disk_kb: Number(onDisk), samples_written: written},
      memory_budget_mb: budgetMb,
      time_stride: stride,
      read_1gib_stride_1: {ours, plain_readsync: reference, ratio: Number((ours.mb_per_s / reference.mb_per_s).toFixed(2))},
      [`read_all_stride_${stride}`]: readStrided,
      training: {
        autoencoder: stage('autoencoder'),
        operator: stage('operator'),
        wall_seconds: Number(wall.toFixed(1)),
        peak_rss_mb: meta.training.peak_rss_mb,
        streamed: meta.training.streamed,
        latent_cache: cacheLine.replace(/^.*?: /, ''),
      },
      data_gb_per_peak_rss_gb: Number((bytes / 1e9 / (meta.training.peak_rss_mb / 1024)).toFixed(1)),
    }
    console.log(JSON.stringify(figures, null, 2))
    return figures
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}
