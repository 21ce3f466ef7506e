/**
 * Consistency distillation of the residual corrector (Song et al. 2023, in the flow's direction:
 * noise at tau = 0, data at tau = 1). The student is a consistency function
 *   f(x, c, tau) = x + (1 - tau) * F(x, c, tau)        (so f(x, c, 1) = x exactly)
 * that maps any point of the teacher's sampling trajectory straight to its end point, so one
 * call f(eps, c, 0) replaces the teacher's N Euler steps.
 * Distillation loss for a batch (N = teacherSteps, grid tau_n = n/N):
 *   n ~ U{0..N-1}, eps ~ N(0, s^2), x_n = (1 - tau_n) eps + tau_n r
 *   x_{n+1} = x_n + (1/N) drift_teacher(x_n, c, tau_n)          (one teacher Euler step)
 *   target  = f_student(x_{n+1}, c, tau_{n+1})  with no gradient (stop-gradient target)
 *   loss    = mean |f_student(x_n, c, tau_n) - target|^2
 * At n = N-1 the target is x_N itself (boundary condition), which anchors the chain.
 */
import * as tf from '@tensorflow/tfjs'

import type {Ctx} from '../layers.js'
import type {ParamStore} from '../params.js'
import type {Rng} from '../rng.js'
import {type CorrectorOptions, type ResidualCorrector, TokenMlpOnState} from './corrector.js'
import type {ModelInfo} from './types.js'

export type StudentOptions = Omit<CorrectorOptions, 'noiseScale'>

export class ConsistencyStudent implements ModelInfo {
  readonly kind = 'consistency_distill'
  private readonly net: TokenMlpOnState

  constructor(readonly store: ParamStore, readonly options: StudentOptions, private readonly prefix = 'consistency') {
    this.net = new TokenMlpOnState(store, `${prefix}/f`, options)
  }

  /** The consistency function f(x, c, tau) -> estimate of the trajectory's end point. */
  apply(x: tf.Tensor3D, cond: tf.Tensor3D, tau: number[], ctx: Ctx = {training: false}): tf.Tensor3D {
    const b = x.shape[0]
    const skip = tf.tensor3d(tau.map((t) => 1 - t), [b, 1, 1])
    return tf.add(x, tf.mul(skip, this.net.apply(x, cond, tau, ctx))) as tf.Tensor3D
  }

  /** One-step (or few-step, with `taus` like [0, 0.5]) sampling of the residual from eps. */
  sample(cond: tf.Tensor3D, eps: tf.Tensor3D, taus: number[] = [0], rng?: Rng, noiseScale = 1): tf.Tensor3D {
    return tf.tidy(() => {
      const b = cond.shape[0]
      let x = this.apply(eps, cond, new Array<number>(b).fill(taus[0]))
      for (const tau of taus.slice(1)) {
        if (!rng) throw new Error('multi-step consistency sampling needs an rng for fresh noise')
        const fresh = tf.tensor(rng.fillNormal(eps.size, noiseScale), eps.shape)
        const xt = tf.add(tf.mul(fresh, 1 - tau), tf.mul(x, tau)) as tf.Tensor3D
        x = this.apply(xt, cond, new Array<number>(b).fill(tau))
      }
      return x
    })
  }

  /**
   * Builds the distillation loss for one batch. The teacher step and the stop-gradient target are
   * computed here, eagerly, so the returned closure only differentiates the student's online call;
   * `microBatch` > 0 computes them that many rows at a time (training.distill_micro_batch: the
   * models are per-token, so only peak memory changes).
   */
  distillationLossFn(
    teacher: ResidualCorrector,
    cond: tf.Tensor3D,
    residual: tf.Tensor3D,
    rng: Rng,
    teacherSteps: number,
    ctx: Ctx = {training: true, rng},
    microBatch = 0,
  ): (() => tf.Scalar) & {dispose(): void} {
    const b = cond.shape[0]
    const n = Array.from({length: b}, () => rng.int(teacherSteps))
    const tauN = n.map((i) => i / teacherSteps)
    const tauNext = n.map((i) => (i + 1) / teacherSteps)
    const eps = teacher.noise(cond.shape, rng)
    const rows = microBatch > 0 ? Math.min(microBatch, b) : b
    const parts: tf.Tensor3D[][] = []
    for (let start = 0; start < b; start += rows) {
      const size = Math.min(rows, b - start)
      const part = tf.tidy(() => {
        const slice = (v: tf.Tensor3D) => (size === b ? v : v.slice([start, 0, 0], [size, -1, -1]))
        const [c, r, e] = [slice(cond), slice(residual), slice(eps)]
        const tn = tauN.slice(start, start + size)
        const t = tf.tensor3d(tn, [size, 1, 1])
        const x = tf.add(tf.mul(tf.sub(1, t), e), tf.mul(t, r)) as tf.Tensor3D
        const xNext = tf.add(x, tf.mul(teacher.drift(x, c, tn), 1 / teacherSteps)) as tf.Tensor3D
        return [x, this.apply(xNext, c, tauNext.slice(start, start + size))]
      })
      parts.push(part)
    }
    eps.dispose()
    const join = (i: number): tf.Tensor3D => (parts.length === 1 ? parts[0][i] : tf.concat(parts.map((p) => p[i]), 0))
    const xN = join(0)
    const target = join(1)
    if (parts.length > 1) tf.dispose(parts.flat())
    const fn = (): tf.Scalar => tf.mean(tf.square(tf.sub(this.apply(xN, cond, tauN, ctx), target)))
    return Object.assign(fn, {dispose: () => tf.dispose([xN, target])})
  }

  paramCount(): number {
    return this.store.names().filter((n) => n.startsWith(this.prefix + '/')).reduce((s, n) => s + this.store.get(n).size, 0)
  }

  activationBytes(batch: number, tokens = 1): number {
    return 4 * batch * tokens * (this.net.mlp.activationFloatsPerRow() + 5 * this.options.latentDim)
  }
}
