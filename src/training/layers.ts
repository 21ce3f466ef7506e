/**
 * The few building blocks every model uses, written for the wasm backend: its plain 2-D matMul is
 * ~10x faster than matMul with transposeA/B or batched matMul, and tfjs's built-in matMul gradient
 * uses the transposed forms. So linear layers are customGrads whose backward transposes
 * explicitly and calls the plain kernel (DESIGN.md: 1264 -> 445 ms per operator step).
 */
import * as tf from '@tensorflow/tfjs'

import type {ParamStore} from './params.js'
import type {Rng} from './rng.js'

type CG = Parameters<typeof tf.customGrad>[0]

/** Training context: dropout needs the RNG; evaluation passes training=false. */
export interface Ctx {
  training: boolean
  rng?: Rng
}

const onesRows = new Map<string, tf.Tensor2D>()

/**
 * Sum over rows of dy [N, M] as ones[1, N] @ dy: on wasm a reduction over axis 0 transposes first
 * (~30x slower than this plain matMul). Elsewhere tf.sum.
 */
export function columnSums(dy: tf.Tensor2D): tf.Tensor1D {
  const backend = tf.getBackend()
  if (backend !== 'wasm') return tf.sum(dy, 0)
  const n = dy.shape[0]
  const key = `${backend}:${n}`
  let ones = onesRows.get(key)
  if (!ones || ones.isDisposed) {
    ones = tf.keep(tf.ones([1, n]) as tf.Tensor2D)
    onesRows.set(key, ones)
  }
  return tf.matMul(ones, dy).reshape([dy.shape[1]]) as tf.Tensor1D
}

/** x[N,I] @ w[I,O] + b[O] with a backward made of explicit transposes and plain matMuls. */
export const linearOp = tf.customGrad(((x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save([x, w])
  const value = tf.fused.matMul({a: x, b: w, bias: b})
  return {
    value,
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
      const [sx, sw] = saved as tf.Tensor2D[]
      return [tf.matMul(dy, tf.transpose(sw)), tf.matMul(tf.transpose(sx), dy), columnSums(dy)]
    },
  }
}) as unknown as CG) as unknown as (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D

/** a[N,K] @ b[K,M] for two differentiable operands, same backward trick. */
export const matmul2d = tf.customGrad(((a: tf.Tensor2D, b: tf.Tensor2D, save: tf.GradSaveFunc) => {
  save([a, b])
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as tf.Tensor2D[]
      return [tf.matMul(dy, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy)]
    },
  }
}) as unknown as CG) as unknown as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D

/** Batched a[B,N,K] @ b[B,K,M] (attention), backward with explicit transposes. */
export const bmm = tf.customGrad(((a: tf.Tensor3D, b: tf.Tensor3D, save: tf.GradSaveFunc) => {
  save([a, b])
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor3D, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as tf.Tensor3D[]
      return [tf.matMul(dy, tf.transpose(sb, [0, 2, 1])), tf.matMul(tf.transpose(sa, [0, 2, 1]), dy)]
    },
  }
}) as unknown as CG) as unknown as (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D

/** x[N,K] @ M for a constant M (interpolation, DFT): only x gets a gradient. */
export function constMatmul(x: tf.Tensor2D, m: tf.Tensor2D, mT: tf.Tensor2D): tf.Tensor2D {
  const f = tf.customGrad(((xx: tf.Tensor2D) => ({
    value: tf.matMul(xx, m),
    gradFunc: (dy: tf.Tensor2D) => tf.matMul(dy, mT),
  })) as unknown as CG)
  return f(x) as tf.Tensor2D
}

export interface Linear {
  inDim: number
  outDim: number
  apply(x: tf.Tensor2D): tf.Tensor2D
}

/** PyTorch's default init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias. */
export function createLinear(store: ParamStore, name: string, inDim: number, outDim: number, scale = 1): Linear {
  const limit = scale / Math.sqrt(inDim)
  const w = store.add(`${name}/w`, [inDim, outDim], {kind: 'uniform', limit})
  const b = store.add(`${name}/b`, [outDim], {kind: 'uniform', limit})
  return {inDim, outDim, apply: (x) => linearOp(x, w as tf.Tensor2D, b as tf.Tensor1D)}
}

export interface Norm {
  apply(x: tf.Tensor2D): tf.Tensor2D
}

/** LayerNorm over the last axis of a 2-D tensor. */
export function createLayerNorm(store: ParamStore, name: string, dim: number, eps = 1e-5, gain: 'ones' | 'zeros' = 'ones'): Norm {
  const g = store.add(`${name}/g`, [dim], {kind: gain})
  const b = store.add(`${name}/b`, [dim], {kind: 'zeros'})
  return {
    apply: (x) => {
      const mean = tf.mean(x, -1, true)
      const xc = tf.sub(x, mean)
      const variance = tf.mean(tf.square(xc), -1, true)
      return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), g), b) as tf.Tensor2D
    },
  }
}

/** RMSNorm over the last axis (no mean subtraction), with a learned gain. */
export function createRmsNorm(store: ParamStore, name: string, dim: number, eps = 1e-6): Norm {
  const g = store.add(`${name}/g`, [dim], {kind: 'ones'})
  return {
    apply: (x) => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), g) as tf.Tensor2D,
  }
}

const GELU_C = Math.sqrt(2 / Math.PI)

/**
 * GELU (tanh approximation, as PyTorch's approximate='tanh'), written with the identity
 * 0.5 (1 + tanh(z)) = sigmoid(2 z): the wasm backend's Tanh is ~15x slower than its Sigmoid.
 * A customGrad keeps the backward to a few elementwise ops:
 *   y = x s, s = sigmoid(2 z), z = c (x + a x^3);  dy/dx = s + x s (1 - s) 2c (1 + 3 a x^2).
 */
const geluOp = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const x2 = tf.square(x)
  const s = tf.sigmoid(tf.mul(x, tf.add(tf.mul(x2, 2 * GELU_C * 0.044715), 2 * GELU_C)))
  save([x, x2, s])
  return {
    value: tf.mul(x, s),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sx2, ss] = saved
      const dz = tf.add(tf.mul(sx2, 2 * GELU_C * 3 * 0.044715), 2 * GELU_C)
      const ds = tf.mul(tf.mul(ss, tf.sub(1, ss)), tf.mul(sx, dz))
      return tf.mul(dy, tf.add(ss, ds))
    },
  }
}) as unknown as CG) as unknown as (x: tf.Tensor) => tf.Tensor

export function gelu<T extends tf.Tensor>(x: T): T {
  return geluOp(x) as T
}

export function silu<T extends tf.Tensor>(x: T): T {
  return tf.mul(x, tf.sigmoid(x)) as T
}

/** Inverted dropout with a mask drawn from our RNG (tfjs's own RNG cannot be checkpointed). */
export function dropout<T extends tf.Tensor>(x: T, p: number, ctx: Ctx): T {
  if (!ctx.training || p <= 0) return x
  if (!ctx.rng) throw new Error('dropout in training needs ctx.rng')
  const n = x.size
  const mask = new Float32Array(n)
  const keep = 1 / (1 - p)
  for (let i = 0; i < n; i++) mask[i] = ctx.rng.uniform() < p ? 0 : keep
  return tf.mul(x, tf.tensor(mask, x.shape)) as T
}

/**
 * Sinusoidal features of a per-sample scalar (dt, tau): [B] -> [B, dim]. Computed in JS because
 * the input is data, not a parameter.
 */
export function scalarEmbedding(values: ArrayLike<number>, dim: number, maxPeriod = 1000): tf.Tensor2D {
  const half = Math.floor(dim / 2)
  const out = new Float32Array(values.length * dim)
  for (let i = 0; i < values.length; i++) {
    for (let j = 0; j < half; j++) {
      const freq = Math.exp((-Math.log(maxPeriod) * j) / half)
      // Scale so tau in [0,1] and dt ~ 1e-3..1 both land on distinguishable phases.
      const arg = values[i] * 1000 * freq
      out[i * dim + j] = Math.sin(arg)
      out[i * dim + half + j] = Math.cos(arg)
    }
  }
  return tf.tensor2d(out, [values.length, dim])
}

/** Sum of sizes of the given shapes, times 4 bytes: for activation-memory estimates. */
export function float32Bytes(...sizes: number[]): number {
  return 4 * sizes.reduce((a, b) => a + b, 0)
}
