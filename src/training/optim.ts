/**
 * Optimizers over our ParamStore (not tf.train.*): their slots are named after our parameters so
 * the whole state goes into a checkpoint and comes back bit-exactly. Semantics follow PyTorch:
 *   adam:  L2 weight decay added to the gradient; bias-corrected moments
 *   adamw: decoupled weight decay p <- p * (1 - lr * wd) before the Adam update
 *   sgd:   momentum buffer b <- mu * b + g (b = g on the first step), optional Nesterov
 */
import * as tf from '@tensorflow/tfjs'

import {ExitCode, UserError} from '../util/errors.js'
import type {NamedArray} from './checkpoint.js'
import {useFusedKernels} from './fused.js'
import {type ParamStore, readArrays} from './params.js'

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

export class Optimizer {
  /** Current learning rate; the scheduler sets it. */
  lr: number
  /** Number of updates applied. */
  step = 0
  private readonly slots = new Map<string, tf.Variable>()
  private readonly slotNames: string[]

  constructor(private readonly store: ParamStore, readonly config: OptimizerConfig) {
    if (!['adam', 'adamw', 'sgd'].includes(config.type)) {
      throw new UserError(`Unknown optimizer "${config.type}".`, {
        code: 'TRAIN_OPTIMIZER_UNKNOWN',
        hint: 'Use optimizer: adam, adamw or sgd.',
        exitCode: ExitCode.CHECK_FAILED,
      })
    }
    this.lr = config.lr
    this.slotNames = config.type === 'sgd' ? ((config.momentum ?? 0) > 0 ? ['momentum'] : []) : ['m', 'v']
    for (const [name, v] of store.entries()) {
      for (const s of this.slotNames) this.slots.set(`${s}/${name}`, tf.variable(tf.zerosLike(v), false))
    }
  }

  get type(): OptimizerType {
    return this.config.type
  }

  /** Applies one update from gradients keyed by parameter name (missing = zero gradient). */
  apply(grads: Grads): void {
    this.step += 1
    const t = this.step
    const {lr} = this
    const wd = this.config.weightDecay ?? 0
    if (useFusedKernels()) {
      this.applyFused(grads, t, lr, wd)
      return
    }
    tf.tidy(() => {
      for (const [name, p] of this.store.entries()) {
        let g = grads.get(name) ?? tf.zerosLike(p)
        if (this.type === 'sgd') {
          if (wd > 0) g = tf.add(g, tf.mul(p, wd))
          const mu = this.config.momentum ?? 0
          if (mu > 0) {
            const buf = this.slots.get(`momentum/${name}`)!
            const next = t === 1 ? g : tf.add(tf.mul(buf, mu), g)
            buf.assign(next)
            g = this.config.nesterov ? tf.add(g, tf.mul(next, mu)) : next
          }
          p.assign(tf.sub(p, tf.mul(g, lr)))
          continue
        }
        const [b1, b2] = this.config.betas ?? [0.9, 0.999]
        const eps = this.config.eps ?? 1e-8
        let param: tf.Tensor = p
        if (this.type === 'adamw' && wd > 0) param = tf.mul(p, 1 - lr * wd)
        if (this.type === 'adam' && wd > 0) g = tf.add(g, tf.mul(p, wd))
        const m = this.slots.get(`m/${name}`)!
        const v = this.slots.get(`v/${name}`)!
        m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)))
        v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)))
        const bc1 = 1 - b1 ** t
        const bc2 = 1 - b2 ** t
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), eps)
        p.assign(tf.sub(param, tf.mul(tf.div(m, denom), lr / bc1)))
      }
    })
  }

  /**
   * The same update as one JS loop per parameter (wasm, cpu): ~15 tiny tfjs ops per parameter
   * become three reads and three writes, which is most of the optimizer's cost at our sizes.
   * Arithmetic in float64, stored as float32 (the op path rounds after every op: results agree
   * to float32 rounding, not bit for bit; each path is deterministic on its own).
   */
  private applyFused(grads: Grads, t: number, lr: number, wd: number): void {
    const [b1, b2] = this.config.betas ?? [0.9, 0.999]
    const eps = this.config.eps ?? 1e-8
    const mu = this.config.momentum ?? 0
    const bc1 = 1 - b1 ** t
    const sqrtBc2 = Math.sqrt(1 - b2 ** t)
    const stepSize = lr / bc1
    const decay = this.type === 'adamw' && wd > 0 ? 1 - lr * wd : 1
    const l2 = this.type !== 'adamw' ? wd : 0
    tf.tidy(() => {
      for (const [name, p] of this.store.entries()) {
        const pv = p.dataSync() as Float32Array
        const gt = grads.get(name)
        const gv = gt ? (gt.dataSync() as Float32Array) : new Float32Array(pv.length)
        const next = new Float32Array(pv.length)
        if (this.type === 'sgd') {
          const buf = mu > 0 ? this.slots.get(`momentum/${name}`)! : null
          const bv = buf ? (buf.dataSync() as Float32Array) : null
          const nb = buf ? new Float32Array(pv.length) : null
          for (let i = 0; i < pv.length; i++) {
            let g = gv[i] + (l2 > 0 ? pv[i] * l2 : 0)
            if (nb && bv) {
              const b = t === 1 ? g : bv[i] * mu + g
              nb[i] = b
              g = this.config.nesterov ? g + b * mu : b
            }
            next[i] = pv[i] - g * lr
          }
          if (buf && nb) buf.assign(tf.tensor(nb, buf.shape, 'float32'))
        } else {
          const m = this.slots.get(`m/${name}`)!
          const v = this.slots.get(`v/${name}`)!
          const mv = m.dataSync() as Float32Array
          const vv = v.dataSync() as Float32Array
          const nm = new Float32Array(pv.length)
          const nv = new Float32Array(pv.length)
          for (let i = 0; i < pv.length; i++) {
            const g = gv[i] + (l2 > 0 ? pv[i] * l2 : 0)
            const mi = mv[i] * b1 + g * (1 - b1)
            const vi = vv[i] * b2 + g * g * (1 - b2)
            nm[i] = mi
            nv[i] = vi
            next[i] = pv[i] * decay - (mi / (Math.sqrt(vi) / sqrtBc2 + eps)) * stepSize
          }
          m.assign(tf.tensor(nm, m.shape, 'float32'))
          v.assign(tf.tensor(nv, v.shape, 'float32'))
        }
        p.assign(tf.tensor(next, p.shape, 'float32'))
      }
    })
  }

  exportState(prefix = 'optim/'): {state: OptimizerState; arrays: NamedArray[]} {
    const arrays = [...this.slots.entries()].map(([name, v]) => ({
      name: prefix + name,
      shape: [...v.shape],
      dtype: 'float32' as const,
      data: v.dataSync() as Float32Array,
    }))
    return {state: {type: this.type, step: this.step, lr: this.lr, config: this.config}, arrays}
  }

  /** exportState() with asynchronous reads (required on webgpu). */
  async exportStateAsync(prefix = 'optim/'): Promise<{state: OptimizerState; arrays: NamedArray[]}> {
    const arrays = await readArrays([...this.slots.entries()], prefix)
    return {state: {type: this.type, step: this.step, lr: this.lr, config: this.config}, arrays}
  }

  importState(state: OptimizerState, arrays: NamedArray[], prefix = 'optim/'): void {
    if (state.type !== this.type) {
      throw new UserError(`The checkpoint's optimizer is ${state.type}, the config asks for ${this.type}.`, {
        code: 'CHECKPOINT_MISMATCH',
        hint: 'Resume with the same optimizer, or start the stage over in a new run directory.',
        exitCode: ExitCode.CHECK_FAILED,
      })
    }
    const byName = new Map(arrays.map((a) => [a.name, a]))
    for (const [name, v] of this.slots) {
      const a = byName.get(prefix + name)
      if (!a) throw new UserError(`The checkpoint lacks optimizer slot ${prefix + name}.`, {code: 'CHECKPOINT_MISMATCH', exitCode: ExitCode.CHECK_FAILED})
      v.assign(tf.tensor(a.data, a.shape, 'float32'))
    }
    this.step = state.step
    this.lr = state.lr
  }

  dispose(): void {
    for (const v of this.slots.values()) v.dispose()
    this.slots.clear()
  }
}

export function createOptimizer(store: ParamStore, config: OptimizerConfig): Optimizer {
  return new Optimizer(store, config)
}
