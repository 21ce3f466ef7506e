/**
 * The few building blocks every model uses, written for the wasm backend: its plain 2-D matMul is
 * ~10x faster than matMul with transposeA/B or batched matMul, and tfjs's built-in matMul gradient
 * uses the transposed forms. So linear layers are customGrads whose backward transposes
 * explicitly and calls the plain kernel (DESIGN.md: 1264 -> 445 ms per operator step).
 */
import * as tf from '@tensorflow/tfjs'

import {useReferenceLayers} from './fused.js'
import type {ParamStore} from './params.js'
import type {Rng} from './rng.js'
import {geluProgram} from './webgpu-programs/gelu.js'
import {layerNormProgram, rmsNormProgram} from './webgpu-programs/norm.js'
import {useWebgpuPrograms} from './webgpu-programs/program.js'

type CG = Parameters<typeof tf.customGrad>[0]

/** Training context: dropout needs the RNG; evaluation passes training=false. */
export interface Ctx {
  training: boolean
  rng?: Rng
}

const onesRows = new Map<string, tf.Tensor2D>()

/**
 * Sum over rows of dy [N, M] as ones[1, N] @ dy: on wasm a reduction over axis 0 transposes first
 * (~30x slower than this plain matMul), on webgpu it is two dispatches. On cpu tf.sum.
 */
export function columnSums(dy: tf.Tensor2D): tf.Tensor1D {
  const backend = tf.getBackend()
  // webgpu too: its reduction over axis 0 is a transpose program plus a reduce program.
  if (backend === 'cpu') return tf.sum(dy, 0)
  const n = dy.shape[0]
  const key = `${backend}:${n}`
  let ones = onesRows.get(key)
  if (!ones || ones.isDisposed) {
    ones = tf.keep(tf.ones([1, n]) as tf.Tensor2D)
    onesRows.set(key, ones)
  }
  return tf.matMul(ones, dy).reshape([dy.shape[1]]) as tf.Tensor1D
}

/**
 * The two backward products of y = a @ b: dy @ b^T and a^T @ dy. On wasm with explicit transposes
 * and plain matMuls (its transposed matMul is ~10x slower); elsewhere the transpose flags, which
 * cost no extra kernel.
 */
function matMulGrads<T extends tf.Tensor>(dy: T, a: T, b: T): [T, T] {
  if (tf.getBackend() !== 'wasm') return [tf.matMul(dy, b, false, true) as T, tf.matMul(a, dy, true, false) as T]
  const perm = a.rank === 3 ? [0, 2, 1] : [1, 0]
  return [tf.matMul(dy, tf.transpose(b, perm)) as T, tf.matMul(tf.transpose(a, perm), dy) as T]
}

/**
 * x @ w + b as webgpu's fused matMul kernel on the 2-D tensors: its kernel takes any rank, while
 * tf.fused.matMul (for every backend) first reshapes both operands to 3-D and the result back,
 * three more ops a linear layer (28 a step for the 32-dim operator).
 */
function matMulBias2d(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  return tf.engine().runKernel('_FusedMatMul', {a: x, b: w, bias: b} as unknown as tf.NamedTensorMap, {transposeA: false, transposeB: false, activation: 'linear', leakyreluAlpha: 0} as unknown as tf.NamedAttrMap) as tf.Tensor2D
}

/**
 * x[N,I] @ w[I,O] + b[O] with a hand-written backward (matMulGrads). A weight that is a variable is
 * read in the backward directly (it cannot change within a step): saving it would cost a kernel.
 */
export const linearOp = tf.customGrad(((x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save(w instanceof tf.Variable ? [x] : [x, w])
  const value = useWebgpuPrograms() ? matMulBias2d(x, w, b) : tf.fused.matMul({a: x, b: w, bias: b})
  return {
    value,
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
      const [sx, sw = w] = saved as tf.Tensor2D[]
      return [...matMulGrads(dy, sx, sw), columnSums(dy)]
    },
  }
}) as unknown as CG) as unknown as (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D

/** a[N,K] @ b[K,M] for two differentiable operands, same backward trick. */
export const matmul2d = tf.customGrad(((a: tf.Tensor2D, b: tf.Tensor2D, save: tf.GradSaveFunc) => {
  save([a, b])
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => matMulGrads(dy, saved[0] as tf.Tensor2D, saved[1] as tf.Tensor2D),
  }
}) as unknown as CG) as unknown as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D

/** Batched a[B,N,K] @ b[B,K,M] (attention), backward with explicit transposes. */
export const bmm = tf.customGrad(((a: tf.Tensor3D, b: tf.Tensor3D, save: tf.GradSaveFunc) => {
  save([a, b])
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor3D, saved: tf.Tensor[]) => matMulGrads(dy, saved[0] as tf.Tensor3D, saved[1] as tf.Tensor3D),
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

/**
 * x.reshape(shape) with a gradient that reshapes back: tfjs's own Reshape gradient saves the input
 * (one more kernel per reshape on the tape). Same values.
 */
export function view<T extends tf.Tensor>(x: tf.Tensor, shape: number[]): T {
  const f = tf.customGrad(((a: tf.Tensor) => ({value: tf.reshape(a, shape), gradFunc: (dy: tf.Tensor) => tf.reshape(dy, a.shape)})) as unknown as CG)
  return f(x) as T
}

/** x viewed as `shape`, transposed by `perm`, viewed as `out`: one node, no saved tensors. */
export function permute<T extends tf.Tensor>(x: tf.Tensor, shape: number[], perm: number[], out: number[]): T {
  const inverse = perm.map((_, i) => perm.indexOf(i))
  const f = tf.customGrad(((a: tf.Tensor) => {
    const t = tf.transpose(tf.reshape(a, shape), perm)
    return {value: tf.reshape(t, out), gradFunc: (dy: tf.Tensor) => tf.reshape(tf.transpose(tf.reshape(dy, t.shape), inverse), a.shape)}
  }) as unknown as CG)
  return f(x) as T
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

/**
 * LayerNorm as one customGrad: the forward's 9 ops, and a hand-written backward of ~12 instead of
 * tfjs's ~40 (every broadcast op's gradient adds a reshape, a cast and a reduction), saving 3
 * tensors instead of ~12. dx = r (dxh - mean(dxh) - xhat mean(dxh xhat)), dxh = dy g.
 */
function layerNormOp(eps: number): (x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D) => tf.Tensor2D {
  return tf.customGrad(((x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
    const xc = tf.sub(x, tf.mean(x, -1, true))
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), eps))
    const xhat = tf.mul(xc, r)
    save(g instanceof tf.Variable ? [xhat, r] : [xhat, r, g])
    return {
      value: tf.add(tf.mul(xhat, g), b),
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [xh, rr, gg = g] = saved
        const dxh = tf.mul(dy, gg)
        const inner = tf.sub(tf.sub(dxh, tf.mean(dxh, -1, true)), tf.mul(xh, tf.mean(tf.mul(dxh, xh), -1, true)))
        return [tf.mul(inner, rr), columnSums(tf.mul(dy, xh) as tf.Tensor2D), columnSums(dy)]
      },
    }
  }) as unknown as CG) as unknown as (x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D) => tf.Tensor2D
}

/**
 * RMSNorm times a constant `scale` (the attention folds 1/sqrt(head_dim) into q's norm) as one
 * customGrad: dx = r (dxh - xhat mean(dxh xhat)), dxh = dy g scale.
 */
function rmsNormOp(eps: number, scale: number): (x: tf.Tensor2D, g: tf.Tensor1D) => tf.Tensor2D {
  return tf.customGrad(((x: tf.Tensor2D, g: tf.Tensor1D, save: tf.GradSaveFunc) => {
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))
    const xhat = tf.mul(x, r)
    const gs = scale === 1 ? g : tf.mul(g, scale)
    save(g instanceof tf.Variable ? [xhat, r] : [xhat, r, g])
    return {
      value: tf.mul(xhat, gs),
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [xh, rr, gv = g] = saved
        const dxh = tf.mul(dy, scale === 1 ? gv : tf.mul(gv, scale))
        const dx = tf.mul(tf.sub(dxh, tf.mul(xh, tf.mean(tf.mul(dxh, xh), -1, true))), rr)
        const dg = columnSums(tf.mul(dy, xh) as tf.Tensor2D)
        return [dx, scale === 1 ? dg : tf.mul(dg, scale)]
      },
    }
  }) as unknown as CG) as unknown as (x: tf.Tensor2D, g: tf.Tensor1D) => tf.Tensor2D
}

/** LayerNorm over the last axis of a 2-D tensor (on webgpu as hand-written programs). */
export function createLayerNorm(store: ParamStore, name: string, dim: number, eps = 1e-5, gain: 'ones' | 'zeros' = 'ones'): Norm {
  const g = store.add(`${name}/g`, [dim], {kind: gain}) as tf.Variable<tf.Rank.R1>
  const b = store.add(`${name}/b`, [dim], {kind: 'zeros'}) as tf.Variable<tf.Rank.R1>
  const op = layerNormOp(eps)
  return {
    apply: (x) => {
      if (!useReferenceLayers()) return useWebgpuPrograms() ? layerNormProgram(x, g, b, eps) : op(x, g, b)
      const mean = tf.mean(x, -1, true)
      const xc = tf.sub(x, mean)
      const variance = tf.mean(tf.square(xc), -1, true)
      return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), g), b) as tf.Tensor2D
    },
  }
}

export interface ScaledNorm extends Norm {
  /** The norm's output times a constant (folded into the gain). */
  applyScaled(x: tf.Tensor2D, scale: number): tf.Tensor2D
}

/** RMSNorm over the last axis (no mean subtraction), with a learned gain (webgpu: programs). */
export function createRmsNorm(store: ParamStore, name: string, dim: number, eps = 1e-6): ScaledNorm {
  const g = store.add(`${name}/g`, [dim], {kind: 'ones'}) as tf.Variable<tf.Rank.R1>
  const ops = new Map<number, (x: tf.Tensor2D, g: tf.Tensor1D) => tf.Tensor2D>()
  const applyScaled = (x: tf.Tensor2D, scale: number): tf.Tensor2D => {
    if (useReferenceLayers()) {
      const y = tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), g) as tf.Tensor2D
      return scale === 1 ? y : (tf.mul(y, scale) as tf.Tensor2D)
    }
    if (useWebgpuPrograms()) return rmsNormProgram(x, g, eps, scale)
    let op = ops.get(scale)
    if (!op) ops.set(scale, (op = rmsNormOp(eps, scale)))
    return op(x, g)
  }
  return {apply: (x) => applyScaled(x, 1), applyScaled}
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
  return (useWebgpuPrograms() ? geluProgram(x) : geluOp(x)) as T
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
