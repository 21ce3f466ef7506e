/**
 * Training loss = MSE + lambda_spectral * spectral-energy error + lambda_relative * nRMSE.
 * Spectral energy uses a real DFT written as two matrix products (cos and sin tables), because
 * tfjs has no FFT gradient and the wasm backend no FFT kernel. Both act along axis 1 (the spatial
 * or token axis); trailing axes are treated as independent channels.
 */
import * as tf from '@tensorflow/tfjs'

import {constMatmul, permute, view} from './layers.js'

export interface LossWeights {
  lambdaSpectral?: number
  lambdaRelative?: number
}

export function mse(pred: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.mean(tf.square(tf.sub(pred, target)))
}

/** Mean over samples of ||pred - target|| / ||target|| (per-sample relative RMSE). */
export function nrmse(pred: tf.Tensor, target: tf.Tensor, eps = 1e-8): tf.Scalar {
  const b = pred.shape[0]
  const diff = tf.sum(tf.square(tf.sub(pred, target)).reshape([b, -1]), 1)
  const norm = tf.sum(tf.square(target).reshape([b, -1]), 1)
  return tf.mean(tf.sqrt(tf.div(tf.add(diff, eps * eps), tf.add(norm, eps))))
}

/** DFT tables for length n: cos/sin [n, n/2+1] and their transposes. */
class Dft {
  readonly cos: tf.Tensor2D
  readonly sin: tf.Tensor2D
  readonly cosT: tf.Tensor2D
  readonly sinT: tf.Tensor2D

  constructor(readonly n: number) {
    const k = Math.floor(n / 2) + 1
    const c = new Float32Array(n * k)
    const s = new Float32Array(n * k)
    for (let x = 0; x < n; x++) {
      for (let j = 0; j < k; j++) {
        const a = (2 * Math.PI * ((x * j) % n)) / n
        c[x * k + j] = Math.cos(a) / n
        s[x * k + j] = -Math.sin(a) / n
      }
    }
    this.cos = tf.keep(tf.tensor2d(c, [n, k]))
    this.sin = tf.keep(tf.tensor2d(s, [n, k]))
    this.cosT = tf.keep(tf.transpose(this.cos))
    this.sinT = tf.keep(tf.transpose(this.sin))
  }
}

const tables = new Map<number, Dft>()

function dft(n: number): Dft {
  let d = tables.get(n)
  if (!d || d.cos.isDisposed) {
    d = new Dft(n)
    tables.set(n, d)
  }
  return d
}

/** Power per frequency along axis 1: [B, L, ...] -> [rows, L/2+1]. */
export function energySpectrum(x: tf.Tensor): tf.Tensor2D {
  const [b, n] = x.shape
  const rest = x.shape.slice(2)
  const perm = [0, ...rest.map((_, i) => i + 2), 1]
  const rows = x.rank > 2 ? permute<tf.Tensor2D>(x, x.shape, perm, [-1, n]) : view<tf.Tensor2D>(x, [b, n])
  const t = dft(n)
  const re = constMatmul(rows, t.cos, t.cosT)
  const im = constMatmul(rows, t.sin, t.sinT)
  return tf.add(tf.square(re), tf.square(im)) as tf.Tensor2D
}

/**
 * Energy floor per spectrum row, against training data normalised to unit variance (whose rows
 * hold ~0.5): a batch of near-silent frames (a wave decayed to 1e-6 of its start) would
 * otherwise divide by ~0, and one such validation batch outweighed every other by 1000x.
 */
export const SPECTRAL_ENERGY_FLOOR = 1e-3

/**
 * Relative spectral-energy error: sum_k (E_pred(k) - E_true(k))^2 / sum_k E_true(k)^2 over the
 * batch (the denominator at least SPECTRAL_ENERGY_FLOOR^2 per row). Scale-free for fields of
 * normal size, so lambda_spectral means the same for any field amplitude. Squared, not absolute:
 * an absolute error's gradient keeps its size as the error vanishes, so near convergence it
 * outweighed the MSE it is added to and held the operator's one-step error 30% higher.
 */
export function spectralEnergyError(pred: tf.Tensor, target: tf.Tensor, floorPerRow = SPECTRAL_ENERGY_FLOOR): tf.Scalar {
  const ep = energySpectrum(pred)
  const et = energySpectrum(target)
  return tf.div(tf.sum(tf.square(tf.sub(ep, et))), tf.maximum(tf.sum(tf.square(et)), floorPerRow * floorPerRow * et.shape[0]))
}

export interface LossParts {
  total: tf.Scalar
  mse: tf.Scalar
  spectral: tf.Scalar | null
  relative: tf.Scalar | null
}

export function compositeLoss(pred: tf.Tensor, target: tf.Tensor, w: LossWeights = {}): LossParts {
  const m = mse(pred, target)
  const spectral = (w.lambdaSpectral ?? 0) > 0 ? spectralEnergyError(pred, target) : null
  const relative = (w.lambdaRelative ?? 0) > 0 ? nrmse(pred, target) : null
  let total: tf.Scalar = m
  if (spectral) total = tf.add(total, tf.mul(spectral, w.lambdaSpectral!))
  if (relative) total = tf.add(total, tf.mul(relative, w.lambdaRelative!))
  return {total, mse: m, spectral, relative}
}

/** The scalar total, for use inside a gradient closure. */
export function trainingLoss(pred: tf.Tensor, target: tf.Tensor, w: LossWeights = {}): tf.Scalar {
  return compositeLoss(pred, target, w).total
}
