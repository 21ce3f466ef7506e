import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import * as tf from '@tensorflow/tfjs'

import {Optimizer, type OptimizerConfig} from '../../../src/training/optim.js'
import {ParamStore} from '../../../src/training/params.js'
import {Rng} from '../../../src/training/rng.js'
import {Scheduler} from '../../../src/training/schedule.js'
import {useBackend} from './helpers.js'

/** One scalar parameter p0 = 1 and fixed gradients per step. */
function run(config: OptimizerConfig, grads: number[]): number[] {
  const store = new ParamStore(new Rng(0))
  store.add('p', [1], {kind: 'const', value: 1})
  const opt = new Optimizer(store, config)
  return grads.map((g) => {
    opt.apply(new Map([['p', tf.tensor1d([g])]]))
    return store.get('p').dataSync()[0]
  })
}

const close = (actual: number[], expected: number[], tol = 1e-6): void =>
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) < tol, `step ${i + 1}: ${a} vs ${expected[i]}`))

describe('optimizers against hand-computed values', () => {
  it('adam', async () => {
    await useBackend('cpu')
    // step 1: m=0.05, v=0.00025*... -> mhat=0.5, vhat=0.25, p = 1 - 0.1*0.5/(0.5+1e-8)
    const r = run({type: 'adam', lr: 0.1}, [0.5, -0.25])
    // step 2: m = 0.9*0.05 + 0.1*(-0.25) = 0.02, v = 0.999*0.00025 + 0.001*0.0625 = 0.00031225
    // mhat = 0.02/0.19, vhat = 0.00031225/0.001999
    const p1 = 1 - 0.1
    const p2 = p1 - (0.1 * (0.02 / 0.19)) / (Math.sqrt(0.00031225 / (1 - 0.999 ** 2)) + 1e-8)
    close(r, [p1, p2])
  })

  it('adam with L2 weight decay adds wd * p to the gradient', () => {
    // g' = 0.5 + 0.1*1 = 0.6: first Adam step moves by exactly lr regardless of |g|.
    close(run({type: 'adam', lr: 0.1, weightDecay: 0.1}, [0.5]), [0.9])
  })

  it('adamw decays the weights decoupled from the gradient', () => {
    // p = 1*(1 - 0.1*0.5) - 0.1 * 1 = 0.85
    const r = run({type: 'adamw', lr: 0.1, weightDecay: 0.5}, [0.5, 0.5])
    // step 2: p = 0.85*0.95 - 0.1 * (mhat/sqrt(vhat)) with constant g: mhat = 0.5, vhat = 0.25 -> 1
    close(r, [0.85, 0.85 * 0.95 - 0.1])
  })

  it('sgd with momentum and nesterov', () => {
    // buf1 = g1 = 1 -> p = 1 - 0.1 = 0.9; buf2 = 0.9*1 + 2 = 2.9 -> p = 0.9 - 0.29 = 0.61
    close(run({type: 'sgd', lr: 0.1, momentum: 0.9}, [1, 2]), [0.9, 0.61])
    // nesterov: step uses g + mu*buf: 1 + 0.9 = 1.9 -> 0.81; buf2 = 2.9, 2 + 2.61 = 4.61 -> 0.349
    close(run({type: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true}, [1, 2]), [0.81, 0.349])
    // plain sgd with weight decay: g = 1 + 0.5*1 = 1.5 -> 0.85
    close(run({type: 'sgd', lr: 0.1, weightDecay: 0.5}, [1]), [0.85])
  })

  it('state round-trips: a restored optimizer continues identically', () => {
    const store = new ParamStore(new Rng(0))
    store.add('p', [2], {kind: 'const', value: 1})
    const a = new Optimizer(store, {type: 'adamw', lr: 0.05, weightDecay: 0.01})
    a.apply(new Map([['p', tf.tensor1d([0.3, -0.2])]]))
    const {state, arrays} = a.exportState()
    const store2 = new ParamStore(new Rng(0))
    store2.add('p', [2], {kind: 'const', value: 0})
    store2.importArrays(store.exportArrays())
    const b = new Optimizer(store2, {type: 'adamw', lr: 0.05, weightDecay: 0.01})
    b.importState(JSON.parse(JSON.stringify(state)), arrays)
    a.apply(new Map([['p', tf.tensor1d([0.1, 0.4])]]))
    b.apply(new Map([['p', tf.tensor1d([0.1, 0.4])]]))
    assert.deepEqual(Array.from(store2.get('p').dataSync()), Array.from(store.get('p').dataSync()))
    assert.equal(b.step, 2)
    assert.throws(() => new Optimizer(store, {type: 'rmsprop' as 'adam', lr: 1}), /Unknown optimizer/)
  })
})

describe('schedulers against hand-computed values', () => {
  it('steplr', () => {
    const s = new Scheduler({type: 'steplr', stepSize: 2, gamma: 0.5}, 1)
    assert.deepEqual([s.lr, s.step(), s.step(), s.step(), s.step()], [1, 1, 0.5, 0.5, 0.25])
  })

  it('cosineannealinglr with t_max and eta_min', () => {
    const s = new Scheduler({type: 'cosineannealinglr', tMax: 4, etaMin: 0.1}, 1.1)
    const got = [s.step(), s.step(), s.step(), s.step()]
    const want = [0.1 + 0.5 * (1 + Math.cos(Math.PI / 4)), 0.6, 0.1 + 0.5 * (1 + Math.cos((3 * Math.PI) / 4)), 0.1]
    close(got, want, 1e-12)
  })

  it('reducelronplateau with patience, threshold, cooldown and min lr', () => {
    const s = new Scheduler({type: 'reducelronplateau', factor: 0.5, patience: 1, threshold: 0.1, cooldown: 1, minLr: 0.3}, 1)
    // 1.0 best; 0.95 is not 10% better (bad 1); 0.95 (bad 2 > patience) -> lr 0.5, cooldown 1
    assert.equal(s.step(1), 1)
    assert.equal(s.step(0.95), 1)
    assert.equal(s.step(0.95), 0.5)
    // cooldown epoch: bad epochs reset; then two bad epochs -> 0.25 clamped to min 0.3
    assert.equal(s.step(0.99), 0.5)
    assert.equal(s.step(0.99), 0.5)
    assert.equal(s.step(0.99), 0.3)
    // a real improvement resets the count
    assert.equal(s.step(0.5), 0.3)
    const restored = new Scheduler(s.config, 1)
    restored.load(JSON.parse(JSON.stringify(s.state())))
    assert.deepEqual(restored.state(), s.state())
    assert.equal(restored.step(0.5), s.step(0.5))
  })

  it('warmup_epochs ramps linearly, then the schedule starts from the base lr as its epoch 0', () => {
    // w = 3: epochs 0..2 at 1/4, 2/4, 3/4 of the base; epoch 3 is the cosine's epoch 0 (base).
    const s = new Scheduler({type: 'cosineannealinglr', tMax: 2, etaMin: 0, warmupEpochs: 3}, 1)
    close([s.lr, s.step(), s.step(), s.step(), s.step(), s.step()], [0.25, 0.5, 0.75, 1, 0.5, 0], 1e-12)
    const st = new Scheduler({type: 'steplr', stepSize: 1, gamma: 0.5, warmupEpochs: 1}, 2)
    assert.deepEqual([st.lr, st.step(), st.step(), st.step()], [1, 2, 1, 0.5])
    // Plateau: bad epochs during the warm-up do not count.
    const p = new Scheduler({type: 'reducelronplateau', factor: 0.5, patience: 0, warmupEpochs: 2}, 1)
    assert.deepEqual([p.lr, p.step(5), p.step(5), p.step(5), p.step(5)], [1 / 3, 2 / 3, 1, 1, 0.5])
    // Resume mid-warm-up continues the ramp.
    const r = new Scheduler(s.config, 1)
    const a = new Scheduler(s.config, 1)
    a.step()
    r.load(JSON.parse(JSON.stringify(a.state())))
    assert.equal(r.step(), 0.75)
  })
})
