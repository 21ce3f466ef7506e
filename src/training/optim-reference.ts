/**
 * The per-variable update as it was before the flat optimizer (optim.ts): one chain of tfjs ops per
 * parameter tensor for the update, the global-norm clipping and the EMA. Kept as the reference the
 * flat path is tested against (same semantics, ~15 kernels per parameter instead of ~15 in all).
 */
import * as tf from '@tensorflow/tfjs'

import type {NamedArray} from './checkpoint.js'
import type {Grads, OptimizerConfig} from './optim.js'
import type {ParamStore} from './params.js'

export class ReferenceOptimizer {
  lr: number
  step = 0
  private readonly slots = new Map<string, tf.Variable>()

  constructor(private readonly store: ParamStore, readonly config: OptimizerConfig) {
    this.lr = config.lr
    const names = config.type === 'sgd' ? ((config.momentum ?? 0) > 0 ? ['momentum'] : []) : ['m', 'v']
    for (const [name, v] of store.entries()) {
      for (const s of names) this.slots.set(`${s}/${name}`, tf.variable(tf.zerosLike(v), false))
    }
  }

  apply(grads: Grads): void {
    this.step += 1
    const t = this.step
    const {lr} = this
    const wd = this.config.weightDecay ?? 0
    const type = this.config.type
    tf.tidy(() => {
      for (const [name, p] of this.store.entries()) {
        let g = grads.get(name) ?? tf.zerosLike(p)
        if (type === 'sgd') {
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
        if (type === 'adamw' && wd > 0) param = tf.mul(p, 1 - lr * wd)
        if (type === 'adam' && wd > 0) g = tf.add(g, tf.mul(p, wd))
        const m = this.slots.get(`m/${name}`)!
        const v = this.slots.get(`v/${name}`)!
        m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)))
        v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)))
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(1 - b2 ** t)), eps)
        p.assign(tf.sub(param, tf.mul(tf.div(m, denom), lr / (1 - b1 ** t))))
      }
    })
  }

  /** The slots as the per-variable optimizer checkpointed them (`<prefix><slot>/<param>`). */
  exportArrays(prefix = 'optim/'): NamedArray[] {
    return [...this.slots].map(([name, v]) => ({name: prefix + name, shape: [...v.shape], dtype: 'float32' as const, data: v.dataSync() as Float32Array}))
  }

  dispose(): void {
    for (const v of this.slots.values()) v.dispose()
    this.slots.clear()
  }
}

/** Global gradient norm, one square + sum per tensor. */
export function referenceGlobalNorm(grads: Grads): number {
  return tf.tidy(() => Math.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))).dataSync()[0]))
}

/** Per-variable EMA: shadow <- decay * shadow + (1 - decay) * param. */
export class ReferenceEma {
  readonly shadows = new Map<string, tf.Variable>()

  constructor(private readonly store: ParamStore, readonly decay: number) {
    for (const [name, v] of store.entries()) this.shadows.set(name, tf.variable(v.clone(), false))
  }

  update(): void {
    tf.tidy(() => {
      for (const [name, v] of this.store.entries()) {
        const s = this.shadows.get(name)!
        s.assign(tf.add(tf.mul(s, this.decay), tf.mul(v, 1 - this.decay)))
      }
    })
  }

  dispose(): void {
    for (const v of this.shadows.values()) v.dispose()
  }
}

/**
 * One reference step from mean gradients: norm, clip (PyTorch's clip_grad_norm_), update, EMA.
 * The caller disposes `grads`.
 */
export function referenceUpdate(grads: Grads, o: {optimizer: ReferenceOptimizer; clipNorm?: number | null; ema?: ReferenceEma}): number {
  const norm = referenceGlobalNorm(grads)
  let used = grads
  if (o.clipNorm && o.clipNorm > 0 && norm > o.clipNorm) {
    const scale = o.clipNorm / (norm + 1e-6)
    used = new Map([...grads].map(([n, g]) => [n, tf.mul(g, scale)]))
  }
  o.optimizer.apply(used)
  if (used !== grads) tf.dispose([...used.values()])
  o.ema?.update()
  return norm
}
