/**
 * Diffusion residual corrector. The operator's one-step prediction c = op(z0) misses a residual
 * r = z1 - c. The corrector models r given c with a flow-matching drift (a per-token MLP on
 * [x_tau, c, embed(tau)]):
 *   x_tau = (1 - tau) * eps + tau * r,   eps ~ N(0, noiseScale^2),   tau ~ U(0, 1) or Beta(a, b)
 *   drift target v = r - eps             (the straight path's velocity)
 * Sampling integrates dx/dtau = drift from tau = 0 (x = eps) to tau = 1 with `steps` Euler steps;
 * the corrected prediction is c + x_1. All noise and tau come from our RNG, so training resumes
 * bit-exactly.
 */
import * as tf from '@tensorflow/tfjs'

import {type Ctx, scalarEmbedding} from '../layers.js'
import type {ParamStore} from '../params.js'
import type {Rng} from '../rng.js'
import {Mlp} from './mlp.js'
import type {ModelInfo} from './types.js'

export interface CorrectorOptions {
  latentDim: number
  hiddenDim: number
  /** Linear layers in the MLP (>= 2). */
  numLayers: number
  timeEmbedDim: number
  dropout: number
  /** Std of the starting noise (default 1). */
  noiseScale?: number
  /** Distribution of the training tau (training.tau_distribution; default uniform). */
  tauDistribution?: TauDistribution
}

export type TauDistribution = {type: 'uniform'} | {type: 'beta'; alpha: number; beta: number}

/** One training tau from the configured distribution. */
export function drawTau(rng: Rng, d: TauDistribution = {type: 'uniform'}): number {
  return d.type === 'beta' ? rng.beta(d.alpha, d.beta) : rng.uniform()
}

/** Per-sample scalar features tiled over tokens: [B] -> [B*T, E]. */
export function tokenEmbedding(values: number[], tokens: number, dim: number): tf.Tensor2D {
  const e = scalarEmbedding(values, dim)
  return tf.tile(e.reshape([values.length, 1, dim]), [1, tokens, 1]).reshape([values.length * tokens, dim]) as tf.Tensor2D
}

/** A per-token MLP on [x, cond, embed(tau)] -> [B, T, D]: shared by the corrector and the student. */
export class TokenMlpOnState {
  readonly mlp: Mlp
  constructor(store: ParamStore, name: string, readonly options: CorrectorOptions, outScale = 1) {
    this.mlp = new Mlp(store, name, 2 * options.latentDim + options.timeEmbedDim, options.hiddenDim, options.latentDim, Math.max(2, options.numLayers), options.dropout, outScale)
  }

  apply(x: tf.Tensor3D, cond: tf.Tensor3D, tau: number[], ctx: Ctx): tf.Tensor3D {
    const [b, t, d] = x.shape
    const input = tf.concat(
      [x.reshape([b * t, d]) as tf.Tensor2D, cond.reshape([b * t, d]) as tf.Tensor2D, tokenEmbedding(tau, t, this.options.timeEmbedDim)],
      1,
    )
    return this.mlp.apply(input, ctx).reshape([b, t, d])
  }
}

export class ResidualCorrector implements ModelInfo {
  readonly kind = 'diff_residual'
  private readonly net: TokenMlpOnState

  constructor(readonly store: ParamStore, readonly options: CorrectorOptions, private readonly prefix = 'corrector') {
    this.net = new TokenMlpOnState(store, `${prefix}/drift`, options)
  }

  get noiseScale(): number {
    return this.options.noiseScale ?? 1
  }

  drift(x: tf.Tensor3D, cond: tf.Tensor3D, tau: number[], ctx: Ctx = {training: false}): tf.Tensor3D {
    return this.net.apply(x, cond, tau, ctx)
  }

  /** Draws eps [B, T, D] from our RNG. */
  noise(shape: [number, number, number], rng: Rng): tf.Tensor3D {
    return tf.tensor(rng.fillNormal(shape.reduce((a, b) => a * b, 1), this.noiseScale), shape) as tf.Tensor3D
  }

  /**
   * Flow-matching loss for one batch. `cond` = op(z0) and `residual` = z1 - op(z0) are data here
   * (computed without gradient by the caller). Draws tau and eps from `rng` before returning, so
   * the returned closure can be re-evaluated (e.g. by a gradient check) with the same draws.
   */
  lossFn(cond: tf.Tensor3D, residual: tf.Tensor3D, rng: Rng, ctx: Ctx = {training: true, rng}): (() => tf.Scalar) & {dispose(): void} {
    const b = cond.shape[0]
    const tau = Array.from({length: b}, () => drawTau(rng, this.options.tauDistribution))
    const eps = tf.keep(this.noise(cond.shape, rng))
    const tauT = tf.keep(tf.tensor3d(tau, [b, 1, 1]))
    const xTau = tf.keep(tf.add(tf.mul(tf.sub(1, tauT), eps), tf.mul(tauT, residual)) as tf.Tensor3D)
    const target = tf.keep(tf.sub(residual, eps) as tf.Tensor3D)
    eps.dispose()
    tauT.dispose()
    const fn = (): tf.Scalar => tf.mean(tf.square(tf.sub(this.drift(xTau, cond, tau, ctx), target)))
    return Object.assign(fn, {dispose: () => tf.dispose([xTau, target])})
  }

  /** Euler integration of the drift from eps (tau = 0) to tau = 1: the sampled residual. */
  sample(cond: tf.Tensor3D, eps: tf.Tensor3D, steps: number): tf.Tensor3D {
    return tf.tidy(() => {
      const b = cond.shape[0]
      let x = eps
      for (let k = 0; k < steps; k++) {
        const tau = new Array<number>(b).fill(k / steps)
        x = tf.add(x, tf.mul(this.drift(x, cond, tau), 1 / steps)) as tf.Tensor3D
      }
      return x
    })
  }

  paramCount(): number {
    return this.store.names().filter((n) => n.startsWith(this.prefix + '/')).reduce((s, n) => s + this.store.get(n).size, 0)
  }

  activationBytes(batch: number, tokens = 1): number {
    return 4 * batch * tokens * (this.net.mlp.activationFloatsPerRow() + 4 * this.options.latentDim)
  }
}
