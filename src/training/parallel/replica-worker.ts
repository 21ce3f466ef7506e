/**
 * A data-parallel replica (worker thread): its own tfjs + backend, the stage's model built by the
 * recipe, and per step: load main's parameters, run its micro-batches, send the summed gradients.
 */
import {parentPort, workerData} from 'node:worker_threads'

import type {BackendName} from '../backend.js'
import type {MainMessage, ReplicaInit, StepRequest, WorkerMessage} from './protocol.js'
import type {ReplicaBuild} from './replica.js'

const init = workerData as ReplicaInit
const port = parentPort!
const post = (m: WorkerMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer)
const fail = (id: number | null, error: unknown): void => {
  const e = error as Error & {code?: string}
  post({type: 'error', id, message: e?.message ?? String(error), code: e?.code, stack: e?.stack})
}

async function main(): Promise<void> {
  let replica: ReplicaBuild
  let step: (r: StepRequest) => Promise<Extract<WorkerMessage, {type: 'result'}>>
  try {
    const {resolveBackend} = await import('../backend.js')
    await resolveBackend(init.backend as BackendName)
    const {replicaStep} = await import('./replica.js')
    const mod = (await import(init.recipe.module)) as Record<string, unknown>
    const build = mod[init.recipe.export]
    if (typeof build !== 'function') throw new Error(`${init.recipe.module} has no function ${init.recipe.export}`)
    replica = await (build as (args: unknown) => Promise<ReplicaBuild> | ReplicaBuild)(init.recipe.args)
    step = (r) => replicaStep(replica.spec, r)
    const entries = replica.spec.store.entries()
    post({type: 'ready', names: entries.map(([n]) => n), shapes: entries.map(([, v]) => [...v.shape])})
  } catch (error) {
    fail(null, error)
    return
  }
  port.on('message', (m: MainMessage) => {
    if (m.type === 'close') {
      replica.free()
      port.close()
      return
    }
    step(m).then(
      (res) => post(res, [res.grads.buffer as ArrayBuffer]),
      (error) => fail(m.id, error),
    )
  })
}

await main()
