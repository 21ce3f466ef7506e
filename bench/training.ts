/**
 * Training benchmark: one latent-operator training step (forward + backward + AdamW) for the
 * 32-dim config (latent 32 x 32 tokens, pdet hidden 96, group 12, heads 6, depths [1,1,1],
 * mlp_ratio 2, batch 64) on tfjs `wasm` (default, JS attention kernel forced on, all fused kernels off),
 * tfjs `cpu`, and the same architecture in PyTorch on CPU (1 and 2 threads) in the same run.
 * Reports median wall ms/step and median CPU ms/step (process CPU time: on a shared,
 * oversubscribed machine it is distorted far less than wall time), samples/s, achieved GFLOP/s
 * (matMul FLOPs of forward + the two backward matMuls, counted the same way for both), ratios to
 * PyTorch 1-thread, and where the tfjs time goes (kernels plus the JS outside them).
 * Run alone: node --import tsx bench/training.ts [wasm cpu torch]
 */
import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {availableParallelism, loadavg} from 'node:os'
import {fileURLToPath} from 'node:url'

import {stepTimeSettled} from '../src/pipeline/measure.js'
import {resolveBackend} from '../src/training/backend.js'
import {type FusedMode, setFusedKernels} from '../src/training/fused.js'
import {trainingLoss} from '../src/training/losses.js'
import {LatentOperator} from '../src/training/models/operator.js'
import {Optimizer} from '../src/training/optim.js'
import {ReplicaPool} from '../src/training/parallel/index.js'
import {optimizerStep} from '../src/training/stages/loop.js'
import {ParamStore} from '../src/training/params.js'
import {Rng} from '../src/training/rng.js'
import {trainStep} from '../src/training/step.js'
import {buildBenchOperator} from './operator-replica.js'
import {TorchServer} from './peers/torch-server.js'

export interface TrainingBenchRow {
  backend: string
  /** 'auto' (the default: fused optimizer), 'on' (also the JS attention kernel), 'off' (tfjs ops only). */
  fused: FusedMode
  msPerStep: number
  cpuMsPerStep: number
  samplesPerSec: number
  gflopPerSec: number
  steps: number
  /** Data-parallel replicas (main + worker threads); absent: 1. */
  replicas?: number
  /** Micro-batches the batch is split into (absent: 1); their gradients are summed, as accum_steps does. */
  microBatches?: number
  /** Kernel name -> ms in one profiled step, largest first; 'JS (outside kernels)' is the rest. */
  kernels: {name: string; ms: number; share: number}[]
}

export interface TorchPeer {
  available: boolean
  reason?: string
  torch?: string
  mm512GflopsOneThread?: number
  runs?: {threads: number; msPerStep: number; cpuMsPerStep: number; samplesPerSec: number; gflopPerSec: number}[]
}

export interface TrainingBenchResult {
  config: Record<string, unknown>
  paramCount: number
  flopsPerStep: number
  rows: TrainingBenchRow[]
  torch: TorchPeer
  /** 2 replicas vs the main thread alone on the same micro-batches, from alternating blocks of steps. */
  dataParallel: {pairedSpeedup: number; loadAverage: number} | null
  /**
   * The headline: PyTorch's 1-thread step timed between ours in alternating blocks of BLOCK steps
   * (same load on both): medians of the per-round ratios of block medians. Null without PyTorch.
   */
  interleaved: Interleaved | null
  /** tfjs row (backend/fused) -> its ms over PyTorch 1-thread's (timed in its own run, after ours), by wall and by CPU time. */
  ratios: {row: string; wall: number; cpu: number}[]
  goal: string
}

export interface Interleaved {
  torchMs: number
  singleMs: number
  replicasMs: number
  /** Median over rounds of (our 2-replica block median) / (the PyTorch block median right after it). */
  replicasVsTorch: number
  /** The same for the main thread alone (2 micro-batches on 1 replica). */
  singleVsTorch: number
}

const CONFIG = {inputDim: 32, hiddenDim: 96, depths: [1, 1, 1], groupSize: 12, numHeads: 6, mlpRatio: 2, dropout: 0, tokens: 32}
const BATCH = 64
const PEER = fileURLToPath(new URL('peers/torch_operator.py', import.meta.url))
// Debian's interpreter: the one python3-torch installs into.
const PYTHON = '/usr/bin/python3'

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/**
 * Runs `step` until the step time has settled: the median of the last WARM_WINDOW steps within 5%
 * of the window before (at least 2 windows, at most WARM_MAX steps). Wasm steps keep getting
 * faster for 20-40 steps while V8 tiers up; 3 warm-up steps left the first row measured 1.4x
 * slower than the same step measured after it.
 */
const WARM_WINDOW = 5
/** Steps per side per round in the interleaved comparison. */
const BLOCK = 5
const WARM_MAX = 40
async function warmUp(step: () => Promise<void>): Promise<number> {
  const ms: number[] = []
  while (ms.length < WARM_MAX && !stepTimeSettled(ms, WARM_WINDOW, 0.05)) {
    const t0 = performance.now()
    await step()
    ms.push(performance.now() - t0)
  }
  return ms.length
}

async function benchTfjs(backend: 'wasm' | 'cpu', fused: FusedMode, steps: number): Promise<{row: TrainingBenchRow; paramCount: number; flopsPerStep: number}> {
  const {tf} = await resolveBackend(backend)
  const prevMode = setFusedKernels(fused)
  const store = new ParamStore(new Rng(0))
  const op = new LatentOperator(store, CONFIG)
  const flopsPerStep = 3 * op.matmulFlops(BATCH)
  const rng = new Rng(1)
  const z0 = tf.tensor3d(rng.fillNormal(BATCH * 32 * 32), [BATCH, 32, 32])
  const z1 = tf.tensor3d(rng.fillNormal(BATCH * 32 * 32), [BATCH, 32, 32])
  const optimizer = new Optimizer(store, {type: 'adamw', lr: 1e-3, weightDecay: 0.01})
  let step = 0
  const one = (): void => {
    trainStep({store, optimizer, lossFns: [() => trainingLoss(op.forward(z0, 0.1), z1)], context: {stage: 'bench', epoch: 0, step: step++}})
  }
  // Warm-up: kernel set-up, allocation, and V8 optimising the JS kernels.
  if (backend === 'cpu') one()
  else await warmUp(async () => one())
  const wall: number[] = []
  const cpu: number[] = []
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now()
    const c0 = process.cpuUsage()
    one()
    const c = process.cpuUsage(c0)
    wall.push(performance.now() - t0)
    cpu.push((c.user + c.system) / 1000)
  }
  const t0 = performance.now()
  const profile = await tf.profile(() => one())
  const profiledMs = performance.now() - t0
  const byKernel = new Map<string, number>()
  // 'forward' (customGrad) and '*__op' entries wrap kernels that are also listed: skip them.
  for (const k of profile.kernels.filter((k) => k.name !== 'forward' && !k.name.endsWith('__op'))) byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + Number(k.kernelTimeMs))
  const inKernels = [...byKernel.values()].reduce((a, b) => a + b, 0)
  byKernel.set('JS (outside kernels)', Math.max(0, profiledMs - inKernels))
  const kernels = [...byKernel.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([name, ms]) => ({name, ms, share: ms / profiledMs}))
  const ms = median(wall)
  const row: TrainingBenchRow = {backend, fused, msPerStep: ms, cpuMsPerStep: median(cpu), samplesPerSec: (BATCH * 1000) / ms, gflopPerSec: flopsPerStep / ms / 1e6, steps, kernels}
  const paramCount = op.paramCount()
  tf.dispose([z0, z1])
  optimizer.dispose()
  op.dispose()
  store.dispose()
  setFusedKernels(prevMode)
  return {row, paramCount, flopsPerStep}
}

/**
 * The same work as the single-batch rows (BATCH items, forward + backward + AdamW) as the training
 * loop runs it with accum_steps = microBatches, through optimizerStep: on the main thread alone and
 * on `replicas` replicas, in alternating blocks of steps, so both see the same machine load (this
 * machine is shared; a neighbour's job shifts absolute times by 2x within minutes).
 */
async function benchDataParallel(replicas: number, microBatches: number, steps: number, torch?: TorchServer): Promise<{rows: TrainingBenchRow[]; pairedSpeedup: number; interleaved: Interleaved | null}> {
  await resolveBackend('wasm')
  const args = {config: CONFIG, items: BATCH}
  const {spec, free, op} = buildBenchOperator(args)
  const flopsPerStep = 3 * op.matmulFlops(BATCH)
  const recipe = {module: new URL('operator-replica.ts', import.meta.url).href, export: 'buildBenchOperator', args}
  const pool = await ReplicaPool.start({workers: replicas - 1, backend: 'wasm', recipe, store: spec.store})
  const optimizer = new Optimizer(spec.store, {type: 'adamw', lr: 1e-3, weightDecay: 0.01})
  const per = BATCH / microBatches
  const group = Array.from({length: microBatches}, (_, m) => Array.from({length: per}, (_, i) => m * per + i))
  const rng = new Rng(2)
  let step = 0
  const one = (p?: ReplicaPool) => optimizerStep(spec, group, rng, {optimizer, context: {stage: 'bench', epoch: 0, step: ++step}}, false, p)
  const timed = async (p?: ReplicaPool) => {
    const t0 = performance.now()
    const c0 = process.cpuUsage()
    await one(p)
    const c = process.cpuUsage(c0)
    return {wall: performance.now() - t0, cpu: (c.user + c.system) / 1000}
  }
  try {
    await warmUp(async () => {
      await one(pool)
      await one()
    })
    const single: Array<{wall: number; cpu: number}> = []
    const parallel: Array<{wall: number; cpu: number}> = []
    const torchMs: number[] = []
    // Rounds of BLOCK steps each, in turn: each side's block median is a warm-cache step (one step
    // at a time, every step started with caches the other side had just filled: PyTorch's step
    // then measured 250-310 ms against 210-230 in its own run), and adjacent blocks share the load.
    const rounds: Array<{single: number; parallel: number; torch: number}> = []
    for (let r = 0; r < Math.ceil(steps / BLOCK); r++) {
      const block = async (p?: ReplicaPool) => {
        const xs: Array<{wall: number; cpu: number}> = []
        for (let i = 0; i < BLOCK; i++) xs.push(await timed(p))
        return xs
      }
      const s = await block()
      const p = await block(pool)
      single.push(...s)
      parallel.push(...p)
      const t = torch ? await torch.steps(BLOCK) : []
      torchMs.push(...t)
      rounds.push({single: median(s.map((x) => x.wall)), parallel: median(p.map((x) => x.wall)), torch: t.length ? median(t) : NaN})
    }
    const row = (n: number, xs: typeof single): TrainingBenchRow => {
      const ms = median(xs.map((x) => x.wall))
      return {backend: 'wasm', fused: 'auto', msPerStep: ms, cpuMsPerStep: median(xs.map((x) => x.cpu)), samplesPerSec: (BATCH * 1000) / ms, gflopPerSec: flopsPerStep / ms / 1e6, steps, replicas: n, microBatches, kernels: []}
    }
    const interleaved: Interleaved | null = torch
      ? {
          torchMs: median(torchMs), singleMs: median(single.map((x) => x.wall)), replicasMs: median(parallel.map((x) => x.wall)),
          replicasVsTorch: median(rounds.map((r) => r.parallel / r.torch)), singleVsTorch: median(rounds.map((r) => r.single / r.torch)),
        }
      : null
    return {rows: [row(1, single), row(replicas, parallel)], pairedSpeedup: median(rounds.map((r) => r.single / r.parallel)), interleaved}
  } finally {
    await pool.close()
    optimizer.dispose()
    free()
  }
}

const rowName = (r: TrainingBenchRow): string => `${r.backend}/fused-${r.fused}${r.microBatches ? `/${r.microBatches}x${BATCH / r.microBatches}-${r.replicas ?? 1}-replica${(r.replicas ?? 1) > 1 ? 's' : ''}` : ''}`

function hasTorch(): boolean {
  return existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], {stdio: 'ignore'}).status === 0
}

/** Installs Debian's python3-torch with OpenBLAS when missing and we are root with apt. */
function ensureTorch(log: (line: string) => void): string | null {
  if (hasTorch()) return null
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) return `PyTorch is not importable by ${PYTHON} and this is not a root shell with apt-get to install python3-torch`
  log('installing python3-torch libopenblas0-pthread (apt-get) for the PyTorch peer ...')
  const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'python3-torch', 'libopenblas0-pthread'], {stdio: 'ignore', timeout: 900_000})
  if (r.status !== 0 || !hasTorch()) return 'apt-get install python3-torch libopenblas0-pthread failed'
  return null
}

function runTorch(paramCount: number, flopsPerStep: number, log: (line: string) => void): TorchPeer {
  const missing = ensureTorch(log)
  if (missing) return {available: false, reason: missing}
  // One process per thread count: OpenBLAS (pthread build) sizes its own pool from
  // OPENBLAS_NUM_THREADS at load time and ignores torch.set_num_threads, so a "1 thread" run in a
  // process started for 2 used both cores (CPU time twice the wall time).
  type PeerOut = {error?: string; torch: string; mm512_gflops_1thread: number; runs: {threads: number; ms_median: number; cpu_ms_median: number}[]}
  const outs: PeerOut[] = []
  for (const threads of [1, 2]) {
    const env = {...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads)}
    const r = spawnSync(PYTHON, [PEER, '--threads', String(threads), '--steps', '20', '--batch', String(BATCH), '--expect-params', String(paramCount)], {encoding: 'utf8', timeout: 1_200_000, env})
    let out: PeerOut
    try {
      out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '')
    } catch {
      return {available: false, reason: `the PyTorch peer failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').pop()}`}
    }
    if (out.error) return {available: false, reason: out.error}
    outs.push(out)
  }
  return {
    available: true,
    torch: outs[0].torch,
    mm512GflopsOneThread: outs[0].mm512_gflops_1thread,
    runs: outs.flatMap((o) => o.runs).map((x) => ({threads: x.threads, msPerStep: x.ms_median, cpuMsPerStep: x.cpu_ms_median, samplesPerSec: (BATCH * 1000) / x.ms_median, gflopPerSec: flopsPerStep / x.ms_median / 1e6})),
  }
}

export async function benchTraining(which: Array<'wasm' | 'cpu' | 'torch'> = ['wasm', 'cpu', 'torch'], log: (line: string) => void = (l) => console.log(l)): Promise<TrainingBenchResult> {
  const rows: TrainingBenchRow[] = []
  let dataParallel: TrainingBenchResult['dataParallel'] = null
  let paramCount = 0
  let flopsPerStep = 0
  const runs: Array<['wasm' | 'cpu', FusedMode, number]> = []
  if (which.includes('wasm')) runs.push(['wasm', 'auto', 15], ['wasm', 'on', 15], ['wasm', 'off', 15])
  if (which.includes('cpu')) runs.push(['cpu', 'auto', 2])
  for (const [backend, fused, steps] of runs) {
    const r = await benchTfjs(backend, fused, steps)
    rows.push(r.row)
    paramCount = r.paramCount
    flopsPerStep = r.flopsPerStep
    log(
      `tfjs ${backend} (fused ${fused}): ${r.row.msPerStep.toFixed(0)} ms/step wall, ${r.row.cpuMsPerStep.toFixed(0)} ms CPU, ` +
        `${r.row.samplesPerSec.toFixed(0)} samples/s, ${r.row.gflopPerSec.toFixed(2)} GFLOP/s`,
    )
    log(`  where the time goes: ${r.row.kernels.map((k) => `${k.name} ${(100 * k.share).toFixed(0)}%`).join(', ')}`)
  }
  if (paramCount === 0) {
    const store = new ParamStore(new Rng(0))
    const op = new LatentOperator(store, CONFIG)
    paramCount = op.paramCount()
    flopsPerStep = 3 * op.matmulFlops(BATCH)
    op.dispose()
    store.dispose()
  }
  let interleaved: Interleaved | null = null
  if (which.includes('wasm')) {
    // The second core: the same 64 items as 2 micro-batches of 32, on 1 replica (the cost of
    // splitting alone) and on 2 (main + 1 worker thread), with PyTorch's 1-thread step between.
    const peer = which.includes('torch') && !ensureTorch(log) ? await TorchServer.start(PYTHON, PEER, {threads: 1, batch: BATCH, expectParams: paramCount}).catch((e: Error) => (log(`PyTorch peer (interleaved) did not start: ${e.message}`), undefined)) : undefined
    const dp = await benchDataParallel(2, 2, 30, peer).finally(() => peer?.close())
    interleaved = dp.interleaved
    rows.push(...dp.rows)
    dataParallel = {pairedSpeedup: dp.pairedSpeedup, loadAverage: loadavg()[0]}
    for (const row of dp.rows) {
      log(`tfjs wasm, ${row.microBatches} micro-batches of ${BATCH / row.microBatches!} on ${row.replicas} replica(s): ${row.msPerStep.toFixed(0)} ms/step wall, ${row.cpuMsPerStep.toFixed(0)} ms CPU (all threads), ${row.samplesPerSec.toFixed(0)} samples/s, ${row.gflopPerSec.toFixed(2)} GFLOP/s`)
    }
    log(`  2 replicas vs 1, alternating blocks of ${BLOCK} steps: ${dp.pairedSpeedup.toFixed(2)}x faster (median of the rounds' ratios; load average ${loadavg()[0].toFixed(1)} on ${availableParallelism()} cores: the second core only helps when it is idle)`)
    if (interleaved) {
      log(
        `interleaved with PyTorch 1 thread (${interleaved.torchMs.toFixed(0)} ms/step, timed in blocks of ${BLOCK} between ours): 2 replicas ${interleaved.replicasMs.toFixed(0)} ms = ` +
          `${interleaved.replicasVsTorch.toFixed(2)}x, 1 replica ${interleaved.singleVsTorch.toFixed(2)}x (medians of the rounds' ratios; goal: <= 2x)`,
      )
    }
  }
  const torch: TorchPeer = which.includes('torch') ? runTorch(paramCount, flopsPerStep, log) : {available: false, reason: 'not requested'}
  const ratios: TrainingBenchResult['ratios'] = []
  if (torch.available && torch.runs) {
    log(`PyTorch ${torch.torch} CPU (same architecture, ${paramCount} parameters; 512^3 mm on 1 thread: ${torch.mm512GflopsOneThread?.toFixed(0)} GFLOP/s, ~100 on an idle core with OpenBLAS):`)
    for (const t of torch.runs) log(`  ${t.threads} thread(s): ${t.msPerStep.toFixed(0)} ms/step wall, ${t.cpuMsPerStep.toFixed(0)} ms CPU, ${t.samplesPerSec.toFixed(0)} samples/s, ${t.gflopPerSec.toFixed(2)} GFLOP/s`)
    const one = torch.runs.find((t) => t.threads === 1)
    if (one) {
      for (const r of rows) {
        const ratio = {row: rowName(r), wall: r.msPerStep / one.msPerStep, cpu: r.cpuMsPerStep / one.cpuMsPerStep}
        ratios.push(ratio)
        log(`ratio tfjs ${ratio.row} / PyTorch 1 thread: ${ratio.wall.toFixed(2)}x by wall time, ${ratio.cpu.toFixed(2)}x by CPU time (goal: <= 2x)`)
      }
    }
  } else {
    log(`PyTorch peer skipped: ${torch.reason}`)
  }
  return {config: {...CONFIG, batch: BATCH, optimizer: 'adamw'}, paramCount, flopsPerStep, rows, torch, dataParallel, interleaved, ratios, goal: 'tfjs wasm within 2x of PyTorch 1-thread step time'}
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const args = process.argv.slice(2).filter((a) => a === 'wasm' || a === 'cpu' || a === 'torch') as Array<'wasm' | 'cpu' | 'torch'>
  await benchTraining(args.length > 0 ? args : undefined)
}
