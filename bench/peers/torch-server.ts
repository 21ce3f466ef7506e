/**
 * The PyTorch peer kept running (`torch_operator.py --serve`), so the training bench can time its
 * step between ours, step by step: on this shared machine the 1-thread PyTorch step measured
 * 195-325 ms from one run to the next, so a ratio of two runs minutes apart mostly measured the
 * neighbours. Interleaved, both sides see the same load.
 */
import {type ChildProcessWithoutNullStreams, spawn} from 'node:child_process'
import {createInterface} from 'node:readline'

export class TorchServer {
  private readonly pending: Array<(line: string) => void> = []
  private readonly lines: string[] = []
  private exited: string | null = null

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({input: child.stdout}).on('line', (line) => {
      const next = this.pending.shift()
      if (next) next(line)
      else this.lines.push(line)
    })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (code) => {
      this.exited = `the PyTorch peer exited (${code}): ${stderr.trim().split('\n').pop() ?? ''}`
      for (const p of this.pending.splice(0)) p(JSON.stringify({error: this.exited}))
    })
  }

  /** Starts the peer on `threads` intra-op threads (OpenBLAS pinned to as many) and waits until it has warmed up. */
  static async start(python: string, script: string, o: {threads: number; batch: number; expectParams: number}): Promise<TorchServer> {
    const env = {...process.env, OPENBLAS_NUM_THREADS: String(o.threads), OMP_NUM_THREADS: String(o.threads)}
    const child = spawn(python, [script, '--serve', '--threads', String(o.threads), '--batch', String(o.batch), '--expect-params', String(o.expectParams)], {env, stdio: ['pipe', 'pipe', 'pipe']})
    const server = new TorchServer(child)
    const hello = JSON.parse(await server.nextLine()) as {ready?: boolean; error?: string}
    if (!hello.ready) {
      server.close()
      throw new Error(hello.error ?? 'the PyTorch peer did not start')
    }
    return server
  }

  /** Runs `n` PyTorch steps now; their wall times in ms. */
  async steps(n: number): Promise<number[]> {
    if (this.exited) throw new Error(this.exited)
    this.child.stdin.write(`${n}\n`)
    const out = JSON.parse(await this.nextLine()) as {ms?: number[]; error?: string}
    if (!out.ms) throw new Error(out.error ?? 'the PyTorch peer answered nothing')
    return out.ms
  }

  close(): void {
    if (!this.exited) this.child.stdin.end('0\n')
  }

  private nextLine(): Promise<string> {
    const ready = this.lines.shift()
    if (ready !== undefined) return Promise.resolve(ready)
    if (this.exited) return Promise.resolve(JSON.stringify({error: this.exited}))
    return new Promise((resolve) => this.pending.push(resolve))
  }
}
