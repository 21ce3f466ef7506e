/**
 * The step-time model for a GPU target, calibrated from recorded GPU bench results.
 *
 *   stepMs = kernelsPerStep x perKernelMs + flopsPerStep / achieved FLOP/s
 *
 * A tfjs step on a GPU is dispatch-bound: every kernel (forward, backward, optimizer) costs a
 * launch and a round of bookkeeping on the host whatever its size, and the small matMuls of
 * these models reach a fraction of the GPU's peak. kernelsPerStep is counted per stage at
 * dry-run time (tf.profile of one step, measure.ts); the two constants come from bench rows
 * (bench/gpu-train.ts writes them; `fitCalibration` turns rows into a table entry, and a unit test
 * keeps CALIBRATIONS equal to the fit of the checked-in results).
 *
 * Fit: with rows at two or more different kernels/FLOPs ratios (batch 64 and 512, say), least
 * squares for both constants. With one ratio only, the FLOP term cannot be separated: it is taken
 * at ASSUMED_FLOP_EFFICIENCY of the GPU's FP32 peak and the rest of the step is the kernels'
 * (on the H200 row that term is 0.2 ms of 501 ms, so the assumption hardly matters there).
 *
 * Lookup for a target (GPU, backend):
 *   calibrated    a row for this GPU and backend.
 *   extrapolated  the backend is recorded on another GPU: its per-kernel cost carries over (a host
 *                 and driver cost), achieved FLOP/s scale by the FP32 peak ratio. Marked as such.
 *   unmeasured    no row for this backend on any GPU. The estimate says so and prices the run with
 *                 the webgpu figure for that GPU as a stand-in (named), so `ups launch`'s budget
 *                 guard and the watchdog still have a figure; record a bench run to calibrate it.
 */
import {type GpuBackend} from '../training/micro-batch.js'
import {findGpu, type GpuInfo} from './gpus.js'

export {GPU_BACKEND_NAMES, type GpuBackend} from '../training/micro-batch.js'
export const ASSUMED_FLOP_EFFICIENCY = 0.15

export interface GpuBenchPoint {
  kernelsPerStep: number
  flopsPerStep: number
  /** Median step time of the row. */
  msPerStep: number
  batch: number
}

export interface Calibration {
  gpu: string
  backend: GpuBackend
  perKernelMs: number
  /** Achieved FLOP/s on the step's matMuls, in TFLOP/s. */
  achievedTflops: number
  fit: 'least-squares' | 'one-ratio'
  points: GpuBenchPoint[]
  /** The bench result file and the date it was recorded. */
  source: {file: string; date: string}
}

/** Derived from bench/results/gpu.json by fitCalibration (test/unit/pipeline/gpu-calibration.test.ts checks it). */
export const CALIBRATIONS: Calibration[] = [
  {
    gpu: 'H200',
    backend: 'webgpu',
    perKernelMs: 0.14637,
    achievedTflops: 10.05,
    fit: 'one-ratio',
    points: [{kernelsPerStep: 3423, flopsPerStep: 2203582464, msPerStep: 501.24, batch: 64}],
    source: {file: 'bench/results/gpu.json', date: '2026-11-28'},
  },
]

/** The bench file's shape (bench/gpu-train.ts GpuBenchResult), as far as the fit needs it. */
export interface GpuBenchFile {
  when: string
  flopsPerStep: number
  kernelsPerStep?: number
  config: {batch: number}
  adapter: {device?: string; description?: string; software?: boolean} | null
  rows: Array<{backend: string; path?: string; ok: boolean; msPerStep?: number; kernelsPerStep?: number; flopsPerStep?: number; batch?: number}>
}

/** The GPU a bench file ran on ("nvidia-h200" -> H200), or undefined for a software adapter. */
export function benchGpu(file: GpuBenchFile): GpuInfo | undefined {
  const a = file.adapter
  if (!a || a.software) return undefined
  const device = (a.device ?? '').replace(/^(nvidia|amd|intel)[-\s]*/i, '')
  return findGpu(device) ?? gpuNamedIn(a.description ?? '')
}

function gpuNamedIn(text: string): GpuInfo | undefined {
  const m = /\b(H200|H100|A100|L40S|RTX[ _]?\d{4}|A6000|A40|A10|L4|V100)\b/i.exec(text)
  return m ? findGpu(m[1]) : undefined
}

/**
 * Points of one backend in a bench file (rows without a kernel count cannot calibrate). Only the
 * tfjs-op path's rows: the estimate counts that path's kernels (rows from before the webgpu
 * programs have no path and ran it); a programs row's kernels do several ops' work each.
 */
export function benchPoints(file: GpuBenchFile, backend: GpuBackend): GpuBenchPoint[] {
  return file.rows.flatMap((r) => {
    const kernels = r.kernelsPerStep ?? file.kernelsPerStep
    if (r.backend !== backend || !r.ok || !r.msPerStep || !kernels || (r.path && r.path !== 'ops')) return []
    return [{kernelsPerStep: kernels, flopsPerStep: r.flopsPerStep ?? file.flopsPerStep, msPerStep: r.msPerStep, batch: r.batch ?? file.config.batch}]
  })
}

const round = (x: number, digits: number) => Number(x.toPrecision(digits))

/** The two constants from a GPU's points (see the header for the one-ratio case). */
export function fitCalibration(gpu: GpuInfo, backend: GpuBackend, points: GpuBenchPoint[], source: Calibration['source']): Calibration {
  if (points.length === 0) throw new Error(`no ${backend} points with a kernel count to fit`)
  const ratios = new Set(points.map((p) => (p.flopsPerStep / p.kernelsPerStep).toPrecision(6)))
  if (ratios.size >= 2) {
    // Least squares for ms = a k + b f (a: ms per kernel, b: ms per FLOP).
    let skk = 0, skf = 0, sff = 0, skm = 0, sfm = 0
    for (const p of points) {
      skk += p.kernelsPerStep ** 2
      skf += p.kernelsPerStep * p.flopsPerStep
      sff += p.flopsPerStep ** 2
      skm += p.kernelsPerStep * p.msPerStep
      sfm += p.flopsPerStep * p.msPerStep
    }
    const det = skk * sff - skf * skf
    const a = (skm * sff - sfm * skf) / det
    const b = (sfm * skk - skm * skf) / det
    if (a > 0 && b > 0) return {gpu: gpu.name, backend, perKernelMs: round(a, 5), achievedTflops: round(1 / (b * 1e9), 4), fit: 'least-squares', points, source}
  }
  const achieved = ASSUMED_FLOP_EFFICIENCY * gpu.fp32Tflops
  const perKernel = points.reduce((s, p) => s + (p.msPerStep - p.flopsPerStep / (achieved * 1e9)) / p.kernelsPerStep, 0) / points.length
  return {gpu: gpu.name, backend, perKernelMs: round(perKernel, 5), achievedTflops: round(achieved, 4), fit: 'one-ratio', points, source}
}

/** Milliseconds of a step (or forward batch) of `kernels` kernels and `flops` FLOPs. */
export function modelStepMs(kernels: number, flops: number, c: {perKernelMs: number; achievedTflops: number}): number {
  return kernels * c.perKernelMs + flops / (c.achievedTflops * 1e9)
}

export type CalibrationStatus = 'calibrated' | 'extrapolated' | 'unmeasured'

export interface StepModel {
  /** The backend assumed on the target. */
  backend: GpuBackend
  status: CalibrationStatus
  /** The constants used for this GPU (after any extrapolation). */
  perKernelMs: number
  achievedTflops: number
  /** The table entry they come from. */
  from: Calibration
  /** One line: what was measured, where, and what was assumed. */
  basis: string
}

/** The step model for `gpu` with `backend`, from `table` (default CALIBRATIONS); undefined when the table is empty. */
export function stepModelFor(gpu: GpuInfo, backend: GpuBackend, table: Calibration[] = CALIBRATIONS): StepModel | undefined {
  const model = opPathModel(gpu, backend, table)
  return model && backend === 'webgpu' ? {...model, basis: `${model.basis}; ${WEBGPU_PROGRAMS_NOTE}`} : model
}

/**
 * On webgpu the layers and the optimizer run as hand-written programs (training/webgpu-programs):
 * about a third of the dispatches of the tfjs-op path this model counts and was calibrated on
 * (348 against 945 for the 32-dim operator's step, on software Vulkan). Until a GPU run records
 * their times, the op-path figure stands as the upper bound.
 */
export const WEBGPU_PROGRAMS_NOTE = 'webgpu runs hand-written programs with about a third of the dispatches of the tfjs-op path counted here, not yet timed on a GPU: an upper bound'

function opPathModel(gpu: GpuInfo, backend: GpuBackend, table: Calibration[]): StepModel | undefined {
  const src = (c: Calibration) => `${c.source.file}, ${c.source.date}`
  const scaled = (c: Calibration): Pick<StepModel, 'perKernelMs' | 'achievedTflops'> => {
    const from = findGpu(c.gpu)
    return {perKernelMs: c.perKernelMs, achievedTflops: from ? (c.achievedTflops * gpu.fp32Tflops) / from.fp32Tflops : c.achievedTflops}
  }
  const exact = table.find((c) => c.backend === backend && c.gpu === gpu.name)
  if (exact) return {backend, status: 'calibrated', perKernelMs: exact.perKernelMs, achievedTflops: exact.achievedTflops, from: exact, basis: `calibrated: ${backend} on ${gpu.name} (${src(exact)})`}
  const same = table.find((c) => c.backend === backend)
  if (same) {
    return {backend, status: 'extrapolated', ...scaled(same), from: same, basis: `extrapolated: ${backend} measured on ${same.gpu} (${src(same)}); per-kernel cost as there, FLOP/s scaled by FP32 peak ${gpu.fp32Tflops}/${findGpu(same.gpu)?.fp32Tflops ?? '?'} TFLOP/s`}
  }
  const standIn = table.find((c) => c.backend === 'webgpu' && c.gpu === gpu.name) ?? table.find((c) => c.backend === 'webgpu') ?? table[0]
  if (!standIn) return undefined
  const standInGpu = standIn.gpu === gpu.name ? '' : `, extrapolated from ${standIn.gpu}`
  return {
    backend, status: 'unmeasured', ...scaled(standIn), from: standIn,
    basis: `unmeasured: no GPU bench result for ${backend}; priced with the ${standIn.backend} figure as a stand-in (${src(standIn)}${standInGpu})`,
  }
}

/**
 * The backend `ups run` will pick on an instance started from `image`: tfjs-node-gpu's
 * libtensorflow needs CUDA 11.2 (+ cuDNN 8.1), so a CUDA 11.x image gets tensorflow-gpu; any
 * other NVIDIA image runs webgpu (Dawn on the driver's Vulkan).
 */
export function targetBackendOf(image: string): {backend: GpuBackend; reason: string} {
  if (/cuda[:/-]?11\.\d/i.test(image) || /:11\.\d[\d.]*-cudnn/i.test(image)) return {backend: 'tensorflow-gpu', reason: `image ${image} has CUDA 11: tfjs-node-gpu (libtensorflow)`}
  return {backend: 'webgpu', reason: `image ${image}: webgpu (Dawn on the NVIDIA Vulkan driver)`}
}
