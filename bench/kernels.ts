/**
 * Kernels per training step (deterministic: a count, not a time). One optimizer step of each
 * latent stage of configs/train_burgers_32dim.yaml (operator, diff_residual, consistency_distill;
 * batch 64 in one micro-batch, the config's optimizer, grad_clip and EMA), through the training
 * loop's own optimizerStep, under tf.profile: every registered kernel the step runs, on the
 * CPU-side path (`auto`: JS optimizer and fused kernels, what wasm and cpu train with) and on the
 * tfjs-op path (`off`: what GPU backends run), plus the kernels that dispatch work on a GPU
 * (everything except Reshape and Identity, which only relabel a buffer).
 * On webgpu (a software Vulkan works: UPS_WEBGPU_ALLOW_SOFTWARE=1) it also counts the GPU
 * dispatches (programs recorded into the compute pass).
 * `npm run bench -- kernels` (wasm) writes bench/results/kernels.json.
 * Run alone: node --import tsx bench/kernels.ts [wasm|cpu|webgpu] [batch]
 */
import {fileURLToPath} from 'node:url'

import * as tf from '@tensorflow/tfjs'

import {loadConfig, resolveStage, type StageName} from '../src/config/index.js'
import {resolveBackend} from '../src/training/backend.js'
import {type FusedMode, setFusedKernels} from '../src/training/fused.js'
import {buildCorrector, buildOperator, buildStudent} from '../src/training/stages/build.js'
import {consistencyStage} from '../src/training/stages/consistency-distill.js'
import {diffResidualStage} from '../src/training/stages/diff-residual.js'
import type {LatentPairs} from '../src/training/stages/latent-items.js'
import {optimizerConfig, optimizerStep} from '../src/training/stages/loop.js'
import {operatorStage} from '../src/training/stages/operator.js'
import type {StageSpec} from '../src/training/stages/types.js'
import {Optimizer} from '../src/training/optim.js'
import {Rng} from '../src/training/rng.js'
import {Ema} from '../src/training/step.js'
import {dispatchCounter} from '../src/training/webgpu-programs/program.js'

export const KERNEL_STAGES = ['operator', 'diff_residual', 'consistency_distill'] as const
export type KernelStage = (typeof KERNEL_STAGES)[number]
const CONFIG = fileURLToPath(new URL('../configs/train_burgers_32dim.yaml', import.meta.url))
const BATCH = 64
/** Steps timed per path on webgpu. */
const TIMED_STEPS = 3
/** Kernels that only relabel a buffer (no data moves, no GPU dispatch). */
const VIEW_KERNELS = new Set(['Reshape', 'Identity'])

export interface KernelCount {
  stage: KernelStage
  fused: FusedMode
  /** Registered kernels run in one optimizer step (tf.profile; customGrad wrappers excluded). */
  kernels: number
  /** The same without Reshape/Identity. */
  computeKernels: number
  byKernel: Record<string, number>
  /** On webgpu: compute passes dispatched (programs run) in the step. */
  dispatches?: number
  /** On webgpu: wall time of a step on this adapter (the mean of TIMED_STEPS steps). */
  msPerStep?: number
}

/** Random latent pairs of the config's shape: the count does not depend on the values. */
function pairs(tokens: number, dim: number, seed: number, batch: number): LatentPairs {
  const rng = new Rng(seed)
  const size = tokens * dim
  const z = rng.fillNormal(batch * 2 * size)
  const take = (idx: number[], off: number) => {
    const out = new Float32Array(idx.length * size)
    idx.forEach((i, b) => out.set(z.subarray((2 * i + off) * size, (2 * i + off + 1) * size), b * size))
    return tf.tensor3d(out, [idx.length, tokens, dim])
  }
  return {count: batch, batch: (idx) => ({z0: take(idx, 0), z1: take(idx, 1)})}
}

/** Counts one optimizer step of `stage` (after one untimed step: kernel set-up, first-step branches). */
export async function countStepKernels(stage: KernelStage, fused: FusedMode, batch = BATCH): Promise<KernelCount> {
  const {config} = await loadConfig(CONFIG)
  const prev = setFusedKernels(fused)
  const op = buildOperator(config, 1)
  const {tokens, inputDim} = op.options
  const data = pairs(tokens, inputDim, 7, batch)
  const frees: Array<() => void> = [() => (op.dispose(), op.store.dispose())]
  let spec: StageSpec
  if (stage === 'operator') {
    spec = operatorStage(op, data, data, 0.1, {lambdaSpectral: config.training?.lambda_spectral})
  } else if (stage === 'diff_residual') {
    const c = buildCorrector(config, 1)
    frees.push(() => c.store.dispose())
    spec = diffResidualStage(c, op, data, data, 0.1)
  } else {
    const teacher = buildCorrector(config, 1)
    const student = buildStudent(config, 1)
    frees.push(() => (teacher.store.dispose(), student.store.dispose()))
    spec = consistencyStage(student, teacher, op, data, data, 0.1, config.training?.distill_num_taus ?? 4, 1, config.training?.distill_micro_batch ?? 0)
  }
  const s = resolveStage(config, stage as StageName)
  const optimizer = new Optimizer(spec.store, optimizerConfig(s))
  const ema = s.ema_decay ? new Ema(spec.store, s.ema_decay) : undefined
  const rng = new Rng(3)
  const group = [Array.from({length: batch}, (_, i) => i)]
  let n = 0
  const step = () => optimizerStep(spec, group, rng, {optimizer, clipNorm: s.grad_clip, ema, context: {stage, epoch: 1, step: ++n}})
  try {
    await step()
    const backend = tf.getBackend()
    const gpu = backend === 'webgpu'
    const counter = dispatchCounter()
    const profile = await tf.profile(async () => {
      await step()
    }).finally(() => counter.stop())
    const dispatches = counter.count
    // On webgpu also the time (lavapipe runs the GPU on the CPU: a ratio between the paths, not a GPU figure).
    let msPerStep: number | undefined
    if (gpu) {
      const t0 = performance.now()
      for (let i = 0; i < TIMED_STEPS; i++) await step()
      await spec.store.variables()[0].data()
      msPerStep = Math.round(((performance.now() - t0) / TIMED_STEPS) * 10) / 10
    }
    const names = profile.kernels.map((k) => k.name).filter((name) => tf.getKernel(name, backend) !== undefined)
    const byKernel: Record<string, number> = {}
    for (const name of names) byKernel[name] = (byKernel[name] ?? 0) + 1
    const sorted = Object.fromEntries(Object.entries(byKernel).sort((a, b) => b[1] - a[1]))
    return {stage, fused, kernels: names.length, computeKernels: names.filter((k) => !VIEW_KERNELS.has(k)).length, byKernel: sorted, ...(gpu ? {dispatches, msPerStep} : {})}
  } finally {
    optimizer.dispose()
    ema?.dispose()
    for (const f of frees) f()
    setFusedKernels(prev)
  }
}

type Before = Record<`${KernelStage}/${'auto' | 'off'}`, number>

/**
 * The counts before the flat optimizer and the fused layers: this harness run on the previous
 * code (per-variable update, clipping and EMA; LayerNorm/RMSNorm as plain ops), batch 64.
 */
export const BEFORE: Record<'cpu' | 'wasm', Before> = {
  cpu: {'operator/auto': 2523, 'operator/off': 3783, 'diff_residual/auto': 582, 'diff_residual/off': 666, 'consistency_distill/auto': 1172, 'consistency_distill/off': 1256},
  wasm: {'operator/auto': 2551, 'operator/off': 3811, 'diff_residual/auto': 585, 'diff_residual/off': 669, 'consistency_distill/auto': 1175, 'consistency_distill/off': 1259},
}

/** The same on webgpu (software Vulkan, lavapipe): kernels and GPU dispatches per step, batch 64. */
export const BEFORE_WEBGPU: Record<KernelStage, {kernels: number; dispatches: number}> = {
  operator: {kernels: 3783, dispatches: 2850},
  diff_residual: {kernels: 666, dispatches: 487},
  consistency_distill: {kernels: 1256, dispatches: 828},
}

export interface KernelBenchResult {
  backend: string
  batch: number
  rows: Array<KernelCount & {before?: number; dispatchesBefore?: number}>
  goal: string
}

/**
 * Every stage on both paths: on cpu/wasm the JS kernels and the tfjs-op path; on webgpu the
 * hand-written programs (webgpu-programs/) and the tfjs-op path they replace, with dispatch counts.
 */
export async function benchKernels(backend: 'cpu' | 'wasm' | 'webgpu' = 'wasm', log: (line: string) => void = (l) => console.log(l), batch = BATCH): Promise<KernelBenchResult> {
  await resolveBackend(backend)
  const rows: KernelBenchResult['rows'] = []
  for (const stage of KERNEL_STAGES) {
    for (const fused of ['auto', 'off'] as const) {
      const r = await countStepKernels(stage, fused, batch)
      const before = backend === 'webgpu' ? BEFORE_WEBGPU[stage].kernels : BEFORE[backend][`${stage}/${fused}`]
      const dispatchesBefore = backend === 'webgpu' ? BEFORE_WEBGPU[stage].dispatches : undefined
      rows.push({...r, before, ...(dispatchesBefore ? {dispatchesBefore} : {})})
      const path = backend === 'webgpu' ? (fused === 'auto' ? 'webgpu programs' : 'webgpu, tfjs-op path') : fused === 'auto' ? 'wasm/cpu path' : 'tfjs-op path'
      log(`${stage} (${path}): ${r.kernels} kernels/step (${r.computeKernels} without Reshape/Identity)${r.dispatches !== undefined ? `, ${r.dispatches} GPU dispatches (before ${dispatchesBefore}), ${r.msPerStep} ms/step here` : ''}, before ${before} kernels`)
    }
  }
  return {backend, batch, rows, goal: 'operator step <= 400 kernels (from 3,423): GPU dispatches on webgpu, and kernels that do work (without Reshape/Identity)'}
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const b = (['cpu', 'wasm', 'webgpu'] as const).find((x) => x === process.argv[2]) ?? 'wasm'
  console.log(JSON.stringify(await benchKernels(b, undefined, Number(process.argv[3] ?? BATCH))))
}
