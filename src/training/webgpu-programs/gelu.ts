/**
 * GELU (tanh approximation, as layers.ts) as two WebGPU programs: the forward and the backward are
 * one dispatch each (the op formulation runs 6 and 5), with the same sigmoid identity.
 */
import * as tf from '@tensorflow/tfjs'

import {registerWebgpuKernel, runKernel, runProgram} from './program.js'

type CG = Parameters<typeof tf.customGrad>[0]

const C = Math.sqrt(2 / Math.PI)
const A = 0.044715

// sigmoid(2 c (x + a x^3)); 2z is clamped where exp would overflow (sigmoid is 0 or 1 there).
const SIG = `
  fn geluSig(x : f32) -> f32 {
    let z2 = clamp(x * (${(2 * C).toFixed(12)} + x * x * ${(2 * C * A).toFixed(12)}), -80.0, 80.0);
    return 1.0 / (1.0 + exp(-z2));
  }`

registerWebgpuKernel('UpsGelu', ({inputs, backend}) =>
  runProgram(backend, {
    key: 'gelu',
    inputs: [inputs.x],
    names: ['X'],
    outputShape: inputs.x.shape,
    threads: tf.util.sizeFromShape(inputs.x.shape),
    code: `${SIG}
      fn body(i : i32) {
        let x = X[i];
        result[i] = x * geluSig(x);
      }`,
  }),
)

registerWebgpuKernel('UpsGeluGrad', ({inputs, backend}) =>
  runProgram(backend, {
    key: 'gelu_grad',
    inputs: [inputs.dy, inputs.x],
    names: ['DY', 'X'],
    outputShape: inputs.x.shape,
    threads: tf.util.sizeFromShape(inputs.x.shape),
    code: `${SIG}
      fn body(i : i32) {
        let x = X[i];
        let s = geluSig(x);
        let dz = ${(2 * C).toFixed(12)} + x * x * ${(2 * C * 3 * A).toFixed(12)};
        result[i] = DY[i] * (s + x * s * (1.0 - s) * dz);
      }`,
  }),
)

/** GELU on webgpu: one dispatch forward, one backward. */
export const geluProgram = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x])
  return {
    value: runKernel('UpsGelu', {x}),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => runKernel('UpsGeluGrad', {dy, x: saved[0]}),
  }
}) as unknown as CG) as unknown as (x: tf.Tensor) => tf.Tensor
