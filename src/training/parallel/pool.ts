/**
 * Data-parallel replicas of a stage's model in worker threads. Per optimizer step the main thread
 * sends each worker the current parameters (one transferred array) and its share of the
 * micro-batches with their seeds, computes its own share meanwhile, and then adds the workers'
 * summed gradients in replica order: the result depends on the replica count, never on timing.
 */
import {fileURLToPath} from 'node:url'
import {Worker} from 'node:worker_threads'

import type {ParamStore} from '../params.js'
import type {MainMessage, ReplicaInit, ReplicaRecipe, WorkerMessage} from './protocol.js'

type Result = Extract<WorkerMessage, {type: 'result'}>

/** A replica failed: `replica` is its number (1 = the first worker). */
export class ReplicaError extends Error {
  constructor(readonly replica: number, message: string, readonly remoteStack?: string, readonly remoteCode?: string) {
    super(message)
  }
}

export interface ReplicaShare {
  batches: number[][]
  seeds: number[]
}

const here = fileURLToPath(import.meta.url)

/**
 * The built code runs replica-worker.js directly. Under tsx (tests, benchmarks) the sources are
 * .ts and a worker thread does not inherit tsx's loader, so a small bootstrap registers it first.
 */
function spawnWorker(workerData: ReplicaInit): Worker {
  if (!here.endsWith('.ts')) return new Worker(new URL('./replica-worker.js', import.meta.url), {workerData})
  const tsx = import.meta.resolve('tsx/esm/api')
  const entry = new URL('./replica-worker.ts', import.meta.url).href
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}) })`
  return new Worker(code, {eval: true, workerData})
}

/** A file URL for a module next to `importMetaUrl` (.ts under tsx, .js when built). */
export function siblingModule(importMetaUrl: string, name: string): string {
  const ext = fileURLToPath(importMetaUrl).endsWith('.ts') ? '.ts' : '.js'
  return new URL(`./${name}${ext}`, importMetaUrl).href
}

interface Slot {
  worker: Worker
  pending: {id: number; resolve: (r: Result) => void; reject: (e: Error) => void} | null
  dead: Error | null
}

export class ReplicaPool {
  private nextId = 1
  private closed = false

  private constructor(private readonly slots: Slot[], private readonly sizes: number[]) {}

  /** Replicas including the main thread. */
  get replicas(): number {
    return this.slots.length + 1
  }

  /**
   * Starts `workers` threads, each building its replica from `recipe` on `backend`, and checks
   * that every replica has the same parameters (names, shapes) as `store`.
   */
  static async start(o: {workers: number; backend: string; recipe: ReplicaRecipe; store: ParamStore}): Promise<ReplicaPool> {
    const names = o.store.names()
    const shapes = o.store.entries().map(([, v]) => v.shape.join('x'))
    const slots: Slot[] = []
    const ready: Promise<void>[] = []
    for (let i = 1; i <= o.workers; i++) {
      const init: ReplicaInit = {backend: o.backend, recipe: o.recipe, replica: i}
      const slot: Slot = {worker: spawnWorker(init), pending: null, dead: null}
      slots.push(slot)
      ready.push(
        new Promise<void>((resolve, reject) => {
          const onMessage = (m: WorkerMessage) => {
            if (m.type === 'error') return reject(new ReplicaError(i, m.message, m.stack, m.code))
            if (m.type !== 'ready') return
            const theirs = m.shapes.map((s) => s.join('x'))
            if (m.names.join('\n') !== names.join('\n') || theirs.join() !== shapes.join()) {
              return reject(new ReplicaError(i, `its model has ${m.names.length} parameters that do not match the main model's ${names.length}`))
            }
            slot.worker.off('message', onMessage)
            slot.worker.off('exit', onExit)
            resolve()
          }
          const onExit = (code: number) => reject(new ReplicaError(i, `its thread exited with code ${code} while starting`))
          slot.worker.on('message', onMessage)
          slot.worker.on('error', (e) => reject(new ReplicaError(i, e.message, e.stack)))
          slot.worker.once('exit', onExit)
        }),
      )
    }
    const pool = new ReplicaPool(slots, o.store.entries().map(([, v]) => v.size))
    try {
      await Promise.all(ready)
    } catch (error) {
      await pool.close()
      throw error
    }
    slots.forEach((s, k) => pool.watch(s, k + 1))
    return pool
  }

  private watch(slot: Slot, replica: number): void {
    const die = (e: Error) => {
      slot.dead ??= e
      slot.pending?.reject(e)
      slot.pending = null
    }
    slot.worker.on('message', (m: WorkerMessage) => {
      const p = slot.pending
      if (!p || (m.type !== 'result' && m.type !== 'error') || m.id !== p.id) return
      slot.pending = null
      if (m.type === 'result') p.resolve(m)
      else p.reject(new ReplicaError(replica, m.message, m.stack, m.code))
    })
    slot.worker.on('error', (e) => die(new ReplicaError(replica, e.message, e.stack)))
    slot.worker.on('exit', (code) => die(new ReplicaError(replica, `its thread exited (code ${code})`)))
  }

  /**
   * Sends shares[k] to worker k+1 with its own copy of `params` (transferred); resolves to the
   * results in worker order once all have answered, or rejects with the first failure.
   */
  dispatch(params: Float32Array, shares: ReplicaShare[]): Promise<Result[]> {
    if (this.closed) return Promise.reject(new ReplicaError(0, 'the replica pool is closed'))
    return Promise.all(
      shares.map((share, k) => {
        const slot = this.slots[k]
        if (slot.dead) return Promise.reject(slot.dead)
        const id = this.nextId++
        return new Promise<Result>((resolve, reject) => {
          slot.pending = {id, resolve, reject}
          const copy = params.slice()
          const msg: MainMessage = {type: 'step', id, params: copy, batches: share.batches, seeds: share.seeds}
          slot.worker.postMessage(msg, [copy.buffer])
        })
      }),
    )
  }

  /** Sizes of the parameters in store order (to cut a flat gradient array). */
  paramSizes(): number[] {
    return this.sizes
  }

  /** Stops every worker thread (idempotent). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const s of this.slots) {
      s.dead ??= new ReplicaError(0, 'the replica pool is closed')
      s.pending?.reject(s.dead)
      s.pending = null
    }
    await Promise.all(this.slots.map((s) => s.worker.terminate().catch(() => 0)))
  }
}
