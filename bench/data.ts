/**
 * Data benchmark: read throughput of a Burgers-layout file (PDEBench raw: tensor [N, 201, 1024]
 * float32) through our Dataset vs h5py reading the same slices in the same run, and the
 * generator's throughput. File size: UPS_BENCH_DATA_MB (default 64 for a quick smoke run;
 * the figure uses 1024).
 */
import {spawnSync} from 'node:child_process'
import {mkdtemp, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'

import {createPdebenchWriter, openDataset} from '../src/data/index.js'
import {generateSample} from '../src/data/generate/index.js'

const NT = 201
const NX = 1024
const BATCH = 32
const PYTHON = '/usr/bin/python3'
const REPEATS = 5

export async function benchData(): Promise<Record<string, unknown>> {
  const targetMb = Number(process.env.UPS_BENCH_DATA_MB ?? 64)
  const sampleBytes = NT * NX * 4
  const samples = Math.max(BATCH, Math.ceil((targetMb * 1e6) / sampleBytes))
  const dir = await mkdtemp(join(tmpdir(), 'ups-bench-data-'))
  try {
    // Synthetic but smooth data, written by our streaming writer (a solver would take minutes at 1024 points).
    const path = join(dir, 'burgers1d_train.h5')
    const x = Float64Array.from({length: NX}, (_, i) => (i + 0.5) / NX)
    const t = Float64Array.from({length: NT + 1}, (_, k) => k * 0.01)
    let started = performance.now()
    const w = await createPdebenchWriter(path, {nt: NT, nx: NX, x, t, attrs: {generator: 'bench'}})
    const buf = new Float32Array(BATCH * NT * NX)
    for (let a = 0; a < samples; a += BATCH) {
      const n = Math.min(BATCH, samples - a)
      for (let s = 0; s < n; s++) {
        const off = s * NT * NX
        for (let k = 0; k < NT; k++) for (let i = 0; i < NX; i++) buf[off + k * NX + i] = Math.sin(2 * Math.PI * (x[i] - 0.01 * k) + a + s)
      }
      w.append(buf.subarray(0, n * NT * NX))
    }
    await w.close()
    const writeSeconds = (performance.now() - started) / 1000
    const fileMb = (await stat(path)).size / 1e6

    const ours = async (reuse: boolean): Promise<number> => {
      const ds = await openDataset(dir, 'burgers1d', 'train')
      const t0 = performance.now()
      let checksum = 0
      // The training loop's pattern: one reused buffer, so no fresh pages per batch.
      const out = new Float32Array(BATCH * NT * NX)
      for (let a = 0; a < samples; a += BATCH) {
        const {data} = ds.readSamples(a, Math.min(samples, a + BATCH), reuse ? {out} : {})
        checksum += data[data.length - 1]
      }
      const seconds = (performance.now() - t0) / 1000
      ds.close()
      if (!Number.isFinite(checksum)) throw new Error('bad read')
      return (samples * sampleBytes) / 1e6 / seconds
    }
    const h5py = (reuse: boolean): number | null => {
      const r = spawnSync(PYTHON, ['-c', `
import h5py, numpy as np, sys, time
f = h5py.File(sys.argv[1], 'r'); t = f['tensor']; n = t.shape[0]; b = int(sys.argv[2])
buf = np.empty((b,) + t.shape[1:], dtype=np.float32)
t0 = time.perf_counter(); s = 0.0
reuse = sys.argv[3] == '1'
for a in range(0, n, b):
    m = min(n, a + b) - a
    if reuse:
        t.read_direct(buf, np.s_[a:a + m], np.s_[0:m]); s += float(buf[m - 1, -1, -1])
    else:
        s += float(t[a:a + m][-1, -1, -1])
dt = time.perf_counter() - t0
print(n * t.shape[1] * t.shape[2] * 4 / 1e6 / dt)
`, path, String(BATCH), reuse ? '1' : '0'], {encoding: 'utf8'})
      return r.status === 0 ? Number(r.stdout.trim()) : null
    }
    // Both sides read into one preallocated buffer (read_direct for h5py). Runs alternate and
    // the best of five counts, so page-cache warmth and a busy machine favour neither side.
    const best = async (reuse: boolean) => {
      const o: number[] = []
      const h: number[] = []
      for (let i = 0; i < REPEATS; i++) {
        o.push(await ours(reuse))
        const v = h5py(reuse)
        if (v !== null) h.push(v)
      }
      return {ours: Math.max(...o), h5py: h.length ? Math.max(...h) : null}
    }
    // "alloc": a new array per batch (readSamples(a, b) vs h5py t[a:b]); "reuse": one buffer
    // (readSamples(a, b, {out}) vs h5py read_direct).
    const alloc = await best(false)
    const reuse = await best(true)
    const oursMbS = alloc.ours
    const h5pyMbS = alloc.h5py

    const genSamples = 10
    started = performance.now()
    for (let i = 0; i < genSamples; i++) generateSample({task: 'burgers1d', nx: 256, nt: 201, tEnd: 2, nu: 0.01, beta: 0.1}, i)
    const genPerS256 = genSamples / ((performance.now() - started) / 1000)
    started = performance.now()
    generateSample({task: 'burgers1d', nx: 1024, nt: 201, tEnd: 2, nu: 0.01, beta: 0.1}, 0)
    const genPerS1024 = 1 / ((performance.now() - started) / 1000)
    started = performance.now()
    for (let i = 0; i < 100; i++) generateSample({task: 'advection1d', nx: 1024, nt: 201, tEnd: 2, nu: 0.01, beta: 0.1}, i)
    const advPerS = 100 / ((performance.now() - started) / 1000)

    const figures = {
      file_mb: Number(fileMb.toFixed(1)),
      samples,
      write_mb_per_s: Number((fileMb / writeSeconds).toFixed(1)),
      read_mb_per_s_ups: Number(oursMbS.toFixed(1)),
      read_mb_per_s_h5py: h5pyMbS === null ? null : Number(h5pyMbS.toFixed(1)),
      read_ratio_vs_h5py: h5pyMbS === null ? null : Number((oursMbS / h5pyMbS).toFixed(3)),
      read_ratio_goal: 0.8,
      read_reuse_mb_per_s_ups: Number(reuse.ours.toFixed(1)),
      read_reuse_mb_per_s_h5py: reuse.h5py === null ? null : Number(reuse.h5py.toFixed(1)),
      read_reuse_ratio_vs_h5py: reuse.h5py === null ? null : Number((reuse.ours / reuse.h5py).toFixed(3)),
      generate_burgers_nx256_samples_per_s: Number(genPerS256.toFixed(2)),
      generate_burgers_nx1024_samples_per_s: Number(genPerS1024.toFixed(3)),
      generate_advection_nx1024_samples_per_s: Number(advPerS.toFixed(1)),
    }
    const ratio = figures.read_ratio_vs_h5py
    console.log(
      `data: ${figures.file_mb} MB Burgers file (${samples} x ${NT} x ${NX}); read ${figures.read_mb_per_s_ups} MB/s (ups Dataset) vs ` +
        `${figures.read_mb_per_s_h5py ?? 'n/a (h5py missing)'} MB/s (h5py)` +
        (ratio === null ? '' : `, ratio ${ratio} (goal >= 0.8${ratio >= 0.8 ? ', met' : ', NOT met'})`) +
        `; into a reused buffer ${figures.read_reuse_mb_per_s_ups} vs ${figures.read_reuse_mb_per_s_h5py ?? 'n/a'} MB/s (h5py read_direct), ratio ${figures.read_reuse_ratio_vs_h5py ?? 'n/a'}` +
        `; write ${figures.write_mb_per_s} MB/s; generator ${figures.generate_burgers_nx256_samples_per_s} Burgers samples/s at nx=256 ` +
        `(${figures.generate_burgers_nx1024_samples_per_s}/s at nx=1024), ${figures.generate_advection_nx1024_samples_per_s} advection samples/s at nx=1024`,
    )
    return figures
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchData(), null, 2))
}
