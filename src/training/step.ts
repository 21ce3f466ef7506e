/**
 * One optimizer step: gradients of one or more micro-batches (accumulated and averaged),
 * a NaN/Inf check on loss and gradient norm (before anything is changed, so the last good weights
 * and checkpoint stay intact), clipping by global norm, the update, and the EMA.
 */
import * as tf from '@tensorflow/tfjs'

import {ExitCode, UserError} from '../util/errors.js'
import type {NamedArray} from './checkpoint.js'
import {FlatLayout} from './flat.js'
import {assignArray, type Flat, type Grads, type Optimizer} from './optim.js'
import type {ParamStore} from './params.js'
import {emaProgram, sumSquaresPartials} from './webgpu-programs/optim.js'
import {useWebgpuPrograms} from './webgpu-programs/program.js'

export interface StepContext {
  stage: string
  epoch: number
  step: number
}

/** Loss and gradients (keyed by our parameter names) of one closure. */
export function lossAndGrads(store: ParamStore, lossFn: () => tf.Scalar): {loss: tf.Scalar; grads: Grads} {
  const entries = store.entries()
  const byTfName = new Map(entries.map(([name, v]) => [v.name, name]))
  const {value, grads} = tf.variableGrads(lossFn, store.variables())
  const out: Grads = new Map()
  for (const [tfName, g] of Object.entries(grads)) out.set(byTfName.get(tfName)!, g)
  return {loss: value, grads: out}
}

/** Sums gradients of micro-batches; `mean()` divides by their count. */
export class GradientAccumulator {
  private sums: Grads = new Map()
  private lossSum = 0
  count = 0

  constructor(private readonly store: ParamStore) {}

  /** Runs one micro-batch's forward/backward and adds its gradients. Returns its loss. */
  add(lossFn: () => tf.Scalar): number {
    const {loss, grads} = lossAndGrads(this.store, lossFn)
    const value = loss.dataSync()[0]
    loss.dispose()
    this.addGrads(grads, value)
    return value
  }

  /** add() reading the loss asynchronously: webgpu under Node has no synchronous GPU reads. */
  async addAsync(lossFn: () => tf.Scalar): Promise<number> {
    const {loss, grads} = lossAndGrads(this.store, lossFn)
    const value = (await loss.data())[0]
    loss.dispose()
    this.addGrads(grads, value)
    return value
  }

  /**
   * Adds gradients already summed over `count` micro-batches elsewhere (a data-parallel replica),
   * with the sum of their losses. Takes ownership of the tensors.
   */
  addSummed(grads: Grads, lossSum: number, count: number): void {
    this.addGrads(grads, lossSum)
    this.count += count - 1
  }

  private addGrads(grads: Grads, value: number): void {
    for (const [name, g] of grads) {
      const prev = this.sums.get(name)
      if (prev) {
        this.sums.set(name, tf.add(prev, g))
        prev.dispose()
        g.dispose()
      } else {
        this.sums.set(name, g)
      }
    }
    this.lossSum += value
    this.count += 1
  }

  /** The raw sums (not averaged): what a data-parallel replica sends; empties the accumulator. */
  takeSums(): {lossSum: number; count: number; grads: Grads} {
    const out = {lossSum: this.lossSum, count: this.count, grads: this.sums}
    this.sums = new Map()
    this.lossSum = 0
    this.count = 0
    return out
  }

  /** Mean loss and mean gradients; the accumulator is empty afterwards (caller disposes grads). */
  take(): {loss: number; grads: Grads} {
    const n = Math.max(1, this.count)
    const grads: Grads = new Map()
    for (const [name, g] of this.sums) {
      grads.set(name, n === 1 ? g : tf.div(g, n))
      if (n !== 1) g.dispose()
    }
    const loss = this.lossSum / n
    this.sums = new Map()
    this.lossSum = 0
    this.count = 0
    return {loss, grads}
  }
}

const ADDN_CHUNK = 6

function sumOfSquares(grads: Grads): tf.Scalar {
  return tf.tidy(() => {
    const squares = [...grads.values()].map((g) => tf.sum(tf.square(g)))
    // Summed in chunks: webgpu's AddN binds every input as a storage buffer, and a shader stage
    // gets only 8 (more gives an invalid pipeline and a wrong norm, not an error).
    let total: tf.Tensor = tf.scalar(0)
    for (let i = 0; i < squares.length; i += ADDN_CHUNK) total = tf.addN([total, ...squares.slice(i, i + ADDN_CHUNK)])
    return total as tf.Scalar
  })
}

/**
 * The value of a scalar built in a tidy scope, read asynchronously (every backend; webgpu under
 * Node has no synchronous reads). The tensor is freed after the read.
 */
export async function readScalar(build: () => tf.Tensor): Promise<number> {
  const t = tf.tidy(build)
  try {
    return (await t.data())[0]
  } finally {
    t.dispose()
  }
}

export function globalNorm(grads: Grads): number {
  const s = sumOfSquares(grads)
  const value = Math.sqrt(s.dataSync()[0])
  s.dispose()
  return value
}

/** Scales all gradients by maxNorm / norm when norm > maxNorm (PyTorch's clip_grad_norm_). */
export function clipByGlobalNorm(grads: Grads, maxNorm: number, norm = globalNorm(grads)): {grads: Grads; norm: number; clipped: boolean} {
  if (!(norm > maxNorm)) return {grads, norm, clipped: false}
  const scale = maxNorm / (norm + 1e-6)
  const out: Grads = new Map()
  for (const [name, g] of grads) {
    out.set(name, tf.mul(g, scale))
    g.dispose()
  }
  return {grads: out, norm, clipped: true}
}

export function nonFiniteError(what: 'loss' | 'gradient norm', value: number, ctx: StepContext): UserError {
  return new UserError(
    `Training diverged: the ${what} is ${value} in stage ${ctx.stage}, epoch ${ctx.epoch}, step ${ctx.step}. The weights were not updated; the last good checkpoint is kept.`,
    {
      code: 'TRAIN_NONFINITE',
      hint: `Lower the learning rate (e.g. halve stages.${ctx.stage}.optimizer.lr or optimizer.lr) and/or enable gradient clipping (training.grad_clip: 1.0), then resume with \`ups train CONFIG --resume\`.`,
      exitCode: ExitCode.CHECK_FAILED,
      details: {...ctx, what, value: String(value)},
    },
  )
}

export interface TrainStepOptions {
  store: ParamStore
  optimizer: Optimizer
  /** One closure per micro-batch; gradients are averaged over them (gradient accumulation). */
  lossFns: Array<() => tf.Scalar>
  /** Clip the global gradient norm to this (null/0: no clipping). */
  clipNorm?: number | null
  ema?: Ema
  context: StepContext
}

export interface TrainStepResult {
  loss: number
  /** Global gradient norm before clipping. */
  gradNorm: number
  clipped: boolean
}

export function trainStep(o: TrainStepOptions): TrainStepResult {
  const acc = new GradientAccumulator(o.store)
  for (const fn of o.lossFns) acc.add(fn)
  return applyAccumulated(acc, o)
}

/**
 * trainStep with asynchronous reads of the loss and gradient norm: works on every backend and is
 * the only form that works on webgpu (tfjs's synchronous GPU read needs a browser canvas).
 */
export async function trainStepAsync(o: TrainStepOptions): Promise<TrainStepResult> {
  const acc = new GradientAccumulator(o.store)
  for (const fn of o.lossFns) await acc.addAsync(fn)
  return applyAccumulatedAsync(acc, o)
}

/** The second half of trainStep, for loops that feed the accumulator themselves. */
export function applyAccumulated(acc: GradientAccumulator, o: Omit<TrainStepOptions, 'lossFns'>): TrainStepResult {
  const {loss, grads} = acc.take()
  let flat: Flat | undefined
  try {
    if (!Number.isFinite(loss)) throw nonFiniteError('loss', loss, o.context)
    flat = o.optimizer.layout.flatGrads(grads)
    const norm = flatNorm(flat)
    return update(loss, flat, norm, o)
  } finally {
    if (flat && !(flat instanceof Float32Array)) flat.dispose()
    tf.dispose([...grads.values()].filter((g) => !g.isDisposed))
  }
}

export async function applyAccumulatedAsync(acc: GradientAccumulator, o: Omit<TrainStepOptions, 'lossFns'>): Promise<TrainStepResult> {
  const programs = useWebgpuPrograms()
  // On webgpu the gradient concat divides by the micro-batch count (one dispatch per gradient less).
  const {loss, grads, divisor} = programs ? takeSums(acc) : {...acc.take(), divisor: 1}
  let flat: Flat | undefined
  try {
    if (!Number.isFinite(loss)) throw nonFiniteError('loss', loss, o.context)
    flat = o.optimizer.layout.flatGrads(grads, divisor)
    const norm = await flatNormAsync(flat)
    return update(loss, flat, norm, o)
  } finally {
    if (flat && !(flat instanceof Float32Array)) flat.dispose()
    tf.dispose([...grads.values()].filter((g) => !g.isDisposed))
  }
}

/** take() without the per-gradient division: the mean loss, the summed gradients and their count. */
function takeSums(acc: GradientAccumulator): {loss: number; grads: Grads; divisor: number} {
  const {lossSum, count, grads} = acc.takeSums()
  const n = Math.max(1, count)
  return {loss: lossSum / n, grads, divisor: n}
}

/** The L2 norm of a flat buffer (synchronous: CPU-side backends). */
function flatNorm(g: Flat): number {
  if (!(g instanceof Float32Array)) {
    const s = tf.tidy(() => tf.sum(tf.square(g)))
    try {
      return Math.sqrt(s.dataSync()[0])
    } finally {
      s.dispose()
    }
  }
  let s = 0
  for (let i = 0; i < g.length; i++) s += g[i] * g[i]
  return Math.sqrt(s)
}

/**
 * flatNorm with an asynchronous read (every backend, webgpu included). On webgpu one program sums
 * the squares per workgroup and the few partial sums are added here (in float64).
 */
async function flatNormAsync(g: Flat): Promise<number> {
  if (g instanceof Float32Array) return flatNorm(g)
  if (!useWebgpuPrograms()) return Math.sqrt(await readScalar(() => tf.sum(tf.square(g))))
  const partials = sumSquaresPartials(g)
  try {
    return Math.sqrt(((await partials.data()) as Float32Array).reduce((s, x) => s + x, 0))
  } finally {
    partials.dispose()
  }
}

/** Norm check, clipping as a scale folded into the update (PyTorch's clip_grad_norm_), the EMA. */
function update(loss: number, flat: Flat, norm: number, o: Omit<TrainStepOptions, 'lossFns'>): TrainStepResult {
  if (!Number.isFinite(norm)) throw nonFiniteError('gradient norm', norm, o.context)
  const clipped = Boolean(o.clipNorm && o.clipNorm > 0 && norm > o.clipNorm)
  const next = o.optimizer.applyFlat(flat, clipped ? o.clipNorm! / (norm + 1e-6) : 1)
  try {
    o.ema?.updateFlat(next)
  } finally {
    if (!(next instanceof Float32Array)) next.dispose()
  }
  return {loss, gradNorm: norm, clipped}
}

/**
 * Exponential moving average of the weights: shadow <- decay * shadow + (1 - decay) * param, over
 * one flat shadow buffer (flat.ts); exported and imported as one array per parameter.
 */
export class Ema {
  private readonly layout: FlatLayout
  private readonly shadow: tf.Variable<tf.Rank.R1>
  updates = 0

  constructor(store: ParamStore, readonly decay: number) {
    this.layout = new FlatLayout(store)
    this.shadow = tf.tidy(() => tf.variable(this.layout.concat(this.layout.vars), false))
  }

  /** Folds in the store's current weights. */
  update(): void {
    const p = this.layout.flatParams()
    try {
      this.updateFlat(p)
    } finally {
      if (!(p instanceof Float32Array)) p.dispose()
    }
  }

  /** Folds in the weights given as one flat buffer (what the optimizer just wrote). */
  updateFlat(params: Flat): void {
    this.updates += 1
    const d = this.decay
    if (params instanceof Float32Array) {
      const s = this.shadow.dataSync() as Float32Array
      const next = new Float32Array(s.length)
      for (let i = 0; i < s.length; i++) next[i] = s[i] * d + params[i] * (1 - d)
      assignArray(this.shadow, next)
      return
    }
    tf.tidy(() => {
      const next = useWebgpuPrograms() ? emaProgram(this.shadow, params, d) : tf.add(tf.mul(this.shadow, d), tf.mul(params, 1 - d))
      this.shadow.assign(next as tf.Tensor1D)
    })
  }

  exportArrays(prefix = ''): NamedArray[] {
    return this.layout.toNamed(this.shadow.dataSync() as Float32Array, prefix)
  }

  /** exportArrays() with asynchronous reads (webgpu). */
  async exportArraysAsync(prefix = ''): Promise<NamedArray[]> {
    return this.layout.toNamed((await this.shadow.data()) as Float32Array, prefix)
  }

  importArrays(arrays: NamedArray[], prefix = ''): void {
    const missing = (name: string) => new UserError(`The checkpoint lacks EMA weight ${name}.`, {code: 'CHECKPOINT_MISMATCH', exitCode: ExitCode.CHECK_FAILED})
    assignArray(this.shadow, this.layout.fromNamed(arrays, prefix, missing))
  }

  /** Runs `fn` with the EMA weights swapped into the model (for validation), then swaps back. */
  withEmaWeights<T>(fn: () => T): T {
    const saved = this.layout.vars.map((v) => v.clone())
    this.layout.assignFrom(this.shadow)
    try {
      return fn()
    } finally {
      this.layout.vars.forEach((v, i) => v.assign(saved[i]))
      tf.dispose(saved)
    }
  }

  dispose(): void {
    this.shadow.dispose()
  }
}
