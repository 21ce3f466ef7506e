/**
 * GPU check: trains the 32-dim latent operator (latent 32 x 32 tokens, pdet hidden 96, group 12,
 * heads 6, depths [1,1,1], batch 64; forward + backward + Adam) for a fixed number of steps on
 * `webgpu` (the hand-written programs), `webgpu-ops` (webgpu on the tfjs-op path they replace,
 * which the dry-run's estimate is calibrated on) and `wasm`, and writes step times, achieved GFLOP/s (matMul FLOPs: forward plus the
 * two backward matMuls per forward matMul) and the adapter to a JSON file.
 * bench/gpu-pack.sh bundles this file with src/ into one .mjs; bench/gpu-check.sh runs it on the
 * GPU machine. Locally: node --import tsx bench/gpu-train.ts --out bench/results/gpu.json
 * Flags: --out FILE, --steps N (webgpu, default 30), --wasm-steps N (default 5), --warmup N
 * (default 2), --budget-s S (stop a backend's timed steps after S seconds, default 150),
 * --backends webgpu,webgpu-ops,wasm, --batch N (default 64). A software adapter counts only with UPS_WEBGPU_ALLOW_SOFTWARE=1.
 * Each row records its kernels per step (tf.profile of one more step), on webgpu its GPU dispatches
 * per step, FLOPs and batch: what
 * src/pipeline/gpu-calibration.ts fits the dry-run's GPU step model from.
 */
import {mkdirSync, writeFileSync} from 'node:fs'
import {dirname} from 'node:path'

import {resolveBackend} from '../src/training/backend.js'
import {setFusedKernels} from '../src/training/fused.js'
import {trainingLoss} from '../src/training/losses.js'
import {LatentOperator} from '../src/training/models/operator.js'
import {Optimizer} from '../src/training/optim.js'
import {ParamStore} from '../src/training/params.js'
import {Rng} from '../src/training/rng.js'
import {trainStepAsync} from '../src/training/step.js'
import type {WebgpuAdapterInfo} from '../src/training/webgpu.js'
import {dispatchCounter} from '../src/training/webgpu-programs/program.js'

const CONFIG = {inputDim: 32, hiddenDim: 96, depths: [1, 1, 1], groupSize: 12, numHeads: 6, mlpRatio: 2, dropout: 0, tokens: 32}
const BATCH = Number(arg('batch', '64'))

type BenchBackend = 'webgpu' | 'webgpu-ops' | 'wasm'

export interface GpuBenchRow {
  backend: 'webgpu' | 'wasm'
  /** On webgpu: the hand-written programs, or the tfjs-op path (rows before the programs: ops). */
  path?: 'programs' | 'ops'
  ok: boolean
  error?: string
  detail?: string
  warmupMs?: number[]
  stepMs?: number[]
  /** Median of stepMs. */
  msPerStep?: number
  samplesPerSec?: number
  gflopPerSec?: number
  /** tf.profile kernels of one step (after the timed ones). */
  kernelsPerStep?: number
  /** On webgpu: programs recorded into the compute pass in that step. */
  dispatchesPerStep?: number
  flopsPerStep?: number
  batch?: number
  firstLoss?: number
  lastLoss?: number
}

export interface GpuBenchResult {
  when: string
  host: {node: string; arch: string; vkIcd: string | null}
  config: typeof CONFIG & {batch: number}
  paramCount: number
  flopsPerStep: number
  /** Kernels per step of the first row that counted them. */
  kernelsPerStep: number | null
  adapter: WebgpuAdapterInfo | null
  rows: GpuBenchRow[]
  /** wasm ms/step divided by webgpu ms/step. */
  speedupVsWasm: number | null
  /** |first loss on webgpu - first loss on wasm|: same seed and data, so ~1e-6 when the GPU math is right. */
  firstLossDiff: number | null
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const log = (line: string): void => void process.stderr.write(`gpu-train: ${line}\n`)

interface Plan {
  steps: number
  wasmSteps: number
  warmup: number
  budgetS: number
  backends: BenchBackend[]
}

async function benchOne(which: BenchBackend, plan: Plan, info: {paramCount: number; flops: number; adapter: WebgpuAdapterInfo | null}): Promise<GpuBenchRow> {
  const backend = which === 'wasm' ? 'wasm' : 'webgpu'
  const path = which === 'webgpu' ? 'programs' : which === 'webgpu-ops' ? 'ops' : undefined
  setFusedKernels(path === 'ops' ? 'off' : 'auto')
  const resolved = await resolveBackend(backend)
  if (backend === 'webgpu') {
    info.adapter = resolved.adapter ?? null
    if (resolved.adapter?.software && process.env.UPS_WEBGPU_ALLOW_SOFTWARE !== '1') {
      throw new Error(`Dawn chose a software adapter (${resolved.adapter.description}), not a GPU: the NVIDIA Vulkan ICD is not visible`)
    }
  }
  const {tf} = resolved
  const store = new ParamStore(new Rng(0))
  const op = new LatentOperator(store, CONFIG)
  info.paramCount = op.paramCount()
  info.flops = 3 * op.matmulFlops(BATCH)
  const rng = new Rng(1)
  const z0 = tf.tensor3d(rng.fillNormal(BATCH * 32 * 32), [BATCH, 32, 32])
  const z1 = tf.tensor3d(rng.fillNormal(BATCH * 32 * 32), [BATCH, 32, 32])
  const optimizer = new Optimizer(store, {type: 'adam', lr: 1e-3})
  let step = 0
  const losses: number[] = []
  // trainStepAsync reads the loss and the gradient norm back, so each step ends on the host.
  const one = async (): Promise<number> => {
    const t0 = performance.now()
    const r = await trainStepAsync({store, optimizer, lossFns: [() => trainingLoss(op.forward(z0 as never, 0.1), z1)], context: {stage: 'gpu-check', epoch: 0, step: step++}})
    losses.push(r.loss)
    return performance.now() - t0
  }
  const warmupMs: number[] = []
  for (let i = 0; i < plan.warmup; i++) warmupMs.push(await one())
  const stepMs: number[] = []
  const steps = backend === 'webgpu' ? plan.steps : plan.wasmSteps
  const started = performance.now()
  for (let i = 0; i < steps; i++) {
    if (performance.now() - started > plan.budgetS * 1000) {
      log(`${backend}: time budget of ${plan.budgetS} s reached after ${i} steps`)
      break
    }
    stepMs.push(await one())
    if ((i + 1) % 10 === 0) log(`${backend}: ${i + 1}/${steps} steps, median ${median(stepMs).toFixed(1)} ms`)
  }
  const profile = await tf.profile(async () => void (await one()))
  const counter = dispatchCounter()
  await one().finally(() => counter.stop())
  const dispatchesPerStep = backend === 'webgpu' ? counter.count : undefined
  tf.dispose([z0, z1])
  optimizer.dispose()
  store.dispose()
  const ms = stepMs.length > 0 ? median(stepMs) : Number.NaN
  return {
    backend,
    ...(path ? {path} : {}),
    ok: true,
    detail: resolved.reason,
    warmupMs,
    stepMs,
    msPerStep: ms,
    samplesPerSec: (BATCH * 1000) / ms,
    gflopPerSec: info.flops / ms / 1e6,
    kernelsPerStep: profile.kernels.length,
    ...(dispatchesPerStep !== undefined ? {dispatchesPerStep} : {}),
    flopsPerStep: info.flops,
    batch: BATCH,
    firstLoss: losses[0],
    lastLoss: losses.at(-1),
  }
}

export async function benchGpu(opts: Plan): Promise<GpuBenchResult> {
  const info = {paramCount: 0, flops: 0, adapter: null as WebgpuAdapterInfo | null}
  const rows: GpuBenchRow[] = []
  for (const which of opts.backends) {
    log(`${which}: start`)
    try {
      const row = await benchOne(which, opts, info)
      log(`${which}: ${row.msPerStep!.toFixed(1)} ms/step, ${row.gflopPerSec!.toFixed(2)} GFLOP/s, ${row.samplesPerSec!.toFixed(0)} samples/s${row.dispatchesPerStep ? `, ${row.dispatchesPerStep} dispatches/step` : ''}`)
      rows.push(row)
    } catch (error) {
      const e = error as Error & {hint?: string}
      const message = `${e.message}${e.hint ? ` (${e.hint})` : ''}`
      log(`${which}: FAILED: ${message}`)
      rows.push({backend: which === 'wasm' ? 'wasm' : 'webgpu', ...(which === 'wasm' ? {} : {path: which === 'webgpu' ? ('programs' as const) : ('ops' as const)}), ok: false, error: message})
    }
  }
  const gpu = rows.find((r) => r.backend === 'webgpu' && r.path === 'programs' && r.ok) ?? rows.find((r) => r.backend === 'webgpu' && r.ok)
  const wasm = rows.find((r) => r.backend === 'wasm' && r.ok)
  return {
    when: new Date().toISOString(),
    host: {node: process.version, arch: process.arch, vkIcd: process.env.VK_ICD_FILENAMES ?? null},
    config: {...CONFIG, batch: BATCH},
    paramCount: info.paramCount,
    flopsPerStep: info.flops,
    kernelsPerStep: rows.find((r) => r.kernelsPerStep)?.kernelsPerStep ?? null,
    adapter: info.adapter,
    rows,
    speedupVsWasm: gpu?.msPerStep && wasm?.msPerStep ? wasm.msPerStep / gpu.msPerStep : null,
    firstLossDiff: gpu?.firstLoss !== undefined && wasm?.firstLoss !== undefined ? Math.abs(gpu.firstLoss - wasm.firstLoss) : null,
  }
}

const out = arg('out', 'bench/results/gpu.json')
const result = await benchGpu({
  steps: Number(arg('steps', '30')),
  wasmSteps: Number(arg('wasm-steps', '5')),
  warmup: Number(arg('warmup', '2')),
  budgetS: Number(arg('budget-s', '150')),
  backends: arg('backends', 'webgpu,webgpu-ops,wasm').split(',') as BenchBackend[],
})
mkdirSync(dirname(out), {recursive: true})
writeFileSync(out, JSON.stringify(result, null, 2) + '\n')
log(`wrote ${out}`)
process.stdout.write(JSON.stringify({...result, rows: result.rows.map(({stepMs, ...r}) => ({...r, steps: stepMs?.length}))}) + '\n')
// Dawn keeps the event loop alive while its device exists.
process.exit(result.rows.some((r) => r.ok) ? 0 : 1)
