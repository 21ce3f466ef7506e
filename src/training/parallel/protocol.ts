/** Messages between the main thread's ReplicaPool and its replica workers (structured clone). */

/** How a worker builds its replica: `export` of `module` (a file URL) called with `args`. */
export interface ReplicaRecipe {
  module: string
  export: string
  /** Structured-cloneable; Float32Arrays over SharedArrayBuffers are shared, not copied. */
  args: unknown
}

/** workerData of a replica thread. */
export interface ReplicaInit {
  backend: string
  recipe: ReplicaRecipe
  replica: number
}

export interface StepRequest {
  type: 'step'
  id: number
  /** Every parameter, concatenated in the store's order (transferred). */
  params: Float32Array
  batches: number[][]
  /** One RNG seed per micro-batch, drawn by main in micro-batch order. */
  seeds: number[]
}

export type WorkerMessage =
  | {type: 'ready'; names: string[]; shapes: number[][]}
  | {type: 'result'; id: number; grads: Float32Array; present: Uint8Array; lossSum: number; count: number; items: number}
  | {type: 'error'; id: number | null; message: string; code?: string; stack?: string}

export type MainMessage = StepRequest | {type: 'close'}
