/**
 * Optimizers over our ParamStore (not tf.train.*): their state is flat (one buffer per slot over
 * all parameters), checkpointed as one array per parameter named after it, so the whole state goes
 * into a checkpoint and comes back bit-exactly. Semantics follow PyTorch:
 *   adam:  L2 weight decay added to the gradient; bias-corrected moments
 *   adamw: decoupled weight decay p <- p * (1 - lr * wd) before the Adam update
 *   sgd:   momentum buffer b <- mu * b + g (b = g on the first step), optional Nesterov
 */
import * as tf from '@tensorflow/tfjs'

import {ExitCode, UserError} from '../util/errors.js'
import type {NamedArray} from './checkpoint.js'
import {FlatLayout} from './flat.js'
import type {ParamStore} from './params.js'
import {adamProgram, sgdProgram} from './webgpu-programs/optim.js'
import {useWebgpuPrograms} from './webgpu-programs/program.js'

export type OptimizerType = 'adam' | 'adamw' | 'sgd'

export interface OptimizerConfig {
  type: OptimizerType
  lr: number
  weightDecay?: number
  betas?: [number, number]
  eps?: number
  momentum?: number
  nesterov?: boolean
}

export interface OptimizerState {
  type: OptimizerType
  step: number
  lr: number
  config: OptimizerConfig
}

export type Grads = Map<string, tf.Tensor>

/** A flat buffer of every parameter: a tensor on GPU backends, a JS array on CPU-side ones. */
export type Flat = tf.Tensor1D | Float32Array

/**
 * One update over the flat parameter buffer (flat.ts): the moments (or momentum) are one flat
 * variable per slot, so a step is a handful of kernels however many parameter tensors there are.
 * On wasm and cpu (`useFusedKernels`) the update is one JS loop over the flat arrays instead; on
 * webgpu it is one hand-written program (webgpu-programs/optim.ts).
 */
export class Optimizer {
  /** Current learning rate; the scheduler sets it. */
  lr: number
  /** Number of updates applied. */
  step = 0
  readonly layout: FlatLayout
  /** Slot name (m, v, momentum) -> flat variable [layout.size]. */
  private readonly slots = new Map<string, tf.Variable>()

  constructor(store: ParamStore, readonly config: OptimizerConfig) {
    if (!['adam', 'adamw', 'sgd'].includes(config.type)) {
      throw new UserError(`Unknown optimizer "${config.type}".`, {
        code: 'TRAIN_OPTIMIZER_UNKNOWN',
        hint: 'Use optimizer: adam, adamw or sgd.',
        exitCode: ExitCode.CHECK_FAILED,
      })
    }
    this.lr = config.lr
    this.layout = new FlatLayout(store)
    const names = config.type === 'sgd' ? ((config.momentum ?? 0) > 0 ? ['momentum'] : []) : ['m', 'v']
    for (const s of names) this.slots.set(s, tf.tidy(() => tf.variable(tf.zeros([this.layout.size]), false)))
  }

  get type(): OptimizerType {
    return this.config.type
  }

  /** Applies one update from gradients keyed by parameter name (missing = zero gradient). */
  apply(grads: Grads): void {
    const flat = this.layout.flatGrads(grads)
    const next = this.applyFlat(flat)
    if (!(next instanceof Float32Array)) next.dispose()
    if (!(flat instanceof Float32Array)) flat.dispose()
  }

  /**
   * One update from the flat gradient times `scale` (clipping, 1 / micro-batches). Returns the
   * new flat parameters (the EMA folds them in; a tensor is the caller's to dispose).
   */
  applyFlat(grad: Flat, scale = 1): Flat {
    this.step += 1
    return grad instanceof Float32Array ? this.applyJs(grad, scale) : this.applyOps(grad, scale)
  }

  private hyper() {
    const t = this.step
    const [b1, b2] = this.config.betas ?? [0.9, 0.999]
    const wd = this.config.weightDecay ?? 0
    return {
      t, b1, b2, wd, lr: this.lr, eps: this.config.eps ?? 1e-8, mu: this.config.momentum ?? 0,
      bc1: 1 - b1 ** t, sqrtBc2: Math.sqrt(1 - b2 ** t),
    }
  }

  /**
   * The per-parameter semantics of the header as tfjs ops over the flat buffer (GPU backends; the
   * reference the webgpu program is tested against), or that program.
   */
  private applyOps(grad: tf.Tensor1D, scale: number): tf.Tensor1D {
    const programs = useWebgpuPrograms()
    const next = tf.tidy(() => {
      const p = this.layout.paramsTensor()
      return programs ? this.updateProgram(grad, p, scale) : this.updateOps(grad, p, scale)
    })
    if (programs) this.layout.adopt(next)
    else this.layout.assignFrom(next)
    return next
  }

  private updateOps(grad: tf.Tensor1D, p: tf.Tensor1D, scale: number): tf.Tensor1D {
    const {t, b1, b2, wd, lr, eps, mu, bc1, sqrtBc2} = this.hyper()
    let g: tf.Tensor = scale === 1 ? grad : tf.mul(grad, scale)
    if (this.type === 'sgd') {
      if (wd > 0) g = tf.add(g, tf.mul(p, wd))
      if (mu > 0) {
        const buf = this.slots.get('momentum')!
        const b = t === 1 ? g : tf.add(tf.mul(buf, mu), g)
        buf.assign(b as tf.Tensor1D)
        g = this.config.nesterov ? tf.add(g, tf.mul(b, mu)) : b
      }
      return tf.sub(p, tf.mul(g, lr)) as tf.Tensor1D
    }
    const param = this.type === 'adamw' && wd > 0 ? tf.mul(p, 1 - lr * wd) : p
    if (this.type === 'adam' && wd > 0) g = tf.add(g, tf.mul(p, wd))
    const m = this.slots.get('m')!
    const v = this.slots.get('v')!
    m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)))
    v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)))
    const denom = tf.add(tf.div(tf.sqrt(v), sqrtBc2), eps)
    return tf.sub(param, tf.mul(tf.div(m, denom), lr / bc1)) as tf.Tensor1D
  }

  /** updateOps in one dispatch: where updateOps skips an op, the program's constant is neutral (g * 1, g + p * 0, p * 1). */
  private updateProgram(grad: tf.Tensor1D, p: tf.Tensor1D, scale: number): tf.Tensor1D {
    const {t, b1, b2, wd, lr, eps, mu, bc1, sqrtBc2} = this.hyper()
    if (this.type === 'sgd') {
      const buf = mu > 0 ? this.slots.get('momentum')! : null
      const next = sgdProgram(grad, p, buf as tf.Tensor1D | null, {scale, l2: wd, lr, mu, first: t === 1, nesterov: Boolean(this.config.nesterov)})
      if (buf && next.buf) buf.assign(next.buf)
      return next.p
    }
    const m = this.slots.get('m')!
    const v = this.slots.get('v')!
    const decay = this.type === 'adamw' && wd > 0 ? 1 - lr * wd : 1
    const next = adamProgram(grad, p, m as tf.Tensor1D, v as tf.Tensor1D, {scale, l2: this.type === 'adam' ? wd : 0, decay, b1, b2, sqrtBc2, eps, stepSize: lr / bc1})
    m.assign(next.m)
    v.assign(next.v)
    return next.p
  }

  /**
   * The same update as one JS loop (wasm, cpu): arithmetic in float64, stored as float32. The
   * gradient scale is applied as a float32 multiply (what tf.mul does), so an unclipped and a
   * clipped step see the same gradient as the op path.
   */
  private applyJs(gv: Float32Array, scale: number): Float32Array {
    const {t, b1, b2, wd, lr, eps, mu, bc1, sqrtBc2} = this.hyper()
    const stepSize = lr / bc1
    const decay = this.type === 'adamw' && wd > 0 ? 1 - lr * wd : 1
    const l2 = this.type !== 'adamw' ? wd : 0
    const s32 = Math.fround(scale)
    const pv = this.layout.readParams()
    const n = pv.length
    const next = new Float32Array(n)
    const grad = (i: number): number => (scale === 1 ? gv[i] : Math.fround(gv[i] * s32)) + (l2 > 0 ? pv[i] * l2 : 0)
    if (this.type === 'sgd') {
      const buf = mu > 0 ? this.slots.get('momentum')! : null
      const bv = buf ? (buf.dataSync() as Float32Array) : null
      const nb = buf ? new Float32Array(n) : null
      for (let i = 0; i < n; i++) {
        let g = grad(i)
        if (nb && bv) {
          const b = t === 1 ? g : bv[i] * mu + g
          nb[i] = b
          g = this.config.nesterov ? g + b * mu : b
        }
        next[i] = pv[i] - g * lr
      }
      if (buf && nb) assignArray(buf, nb)
    } else {
      const m = this.slots.get('m')!
      const v = this.slots.get('v')!
      const mv = m.dataSync() as Float32Array
      const vv = v.dataSync() as Float32Array
      const nm = new Float32Array(n)
      const nv = new Float32Array(n)
      for (let i = 0; i < n; i++) {
        const g = grad(i)
        const mi = mv[i] * b1 + g * (1 - b1)
        const vi = vv[i] * b2 + g * g * (1 - b2)
        nm[i] = mi
        nv[i] = vi
        next[i] = pv[i] * decay - (mi / (Math.sqrt(vi) / sqrtBc2 + eps)) * stepSize
      }
      assignArray(m, nm)
      assignArray(v, nv)
    }
    this.layout.assignFromArray(next)
    return next
  }

  private state(): OptimizerState {
    return {type: this.type, step: this.step, lr: this.lr, config: this.config}
  }

  /** Per-parameter slot arrays (`<prefix><slot>/<param>`): the checkpoint format of every version. */
  exportState(prefix = 'optim/'): {state: OptimizerState; arrays: NamedArray[]} {
    return {state: this.state(), arrays: this.named([...this.slots].map(([s, v]) => [s, v.dataSync() as Float32Array]), prefix)}
  }

  /** exportState() with asynchronous reads (required on webgpu). */
  async exportStateAsync(prefix = 'optim/'): Promise<{state: OptimizerState; arrays: NamedArray[]}> {
    const slots: Array<[string, Float32Array]> = []
    for (const [s, v] of this.slots) slots.push([s, (await v.data()) as Float32Array])
    return {state: this.state(), arrays: this.named(slots, prefix)}
  }

  /** Per parameter, each slot (the order the per-variable optimizer wrote). */
  private named(slots: Array<[string, Float32Array]>, prefix: string): NamedArray[] {
    const bySlot = slots.map(([s, data]) => this.layout.toNamed(data, `${prefix}${s}/`))
    return this.layout.names.flatMap((_, i) => bySlot.map((arrays) => arrays[i]))
  }

  importState(state: OptimizerState, arrays: NamedArray[], prefix = 'optim/'): void {
    if (state.type !== this.type) {
      throw new UserError(`The checkpoint's optimizer is ${state.type}, the config asks for ${this.type}.`, {
        code: 'CHECKPOINT_MISMATCH',
        hint: 'Resume with the same optimizer, or start the stage over in a new run directory.',
        exitCode: ExitCode.CHECK_FAILED,
      })
    }
    const missing = (name: string) => new UserError(`The checkpoint lacks optimizer slot ${name}.`, {code: 'CHECKPOINT_MISMATCH', exitCode: ExitCode.CHECK_FAILED})
    for (const [s, v] of this.slots) assignArray(v, this.layout.fromNamed(arrays, `${prefix}${s}/`, missing))
    this.step = state.step
    this.lr = state.lr
  }

  dispose(): void {
    for (const v of this.slots.values()) v.dispose()
    this.slots.clear()
    this.layout.forget()
  }
}

/** v <- data, freeing the upload (assign shares its buffer; the tensor object itself is tidied). */
export function assignArray(v: tf.Variable, data: Float32Array): void {
  tf.tidy(() => v.assign(tf.tensor(data, v.shape, 'float32')))
}

export function createOptimizer(store: ParamStore, config: OptimizerConfig): Optimizer {
  return new Optimizer(store, config)
}
