/**
 * Start-up cost of the commands CI calls on every config change, as a ratio to a bare
 * `node -e 0` measured in the same run (median of N). Goal: validate within 4x of bare Node.
 */
import {spawnSync} from 'node:child_process'
import {join} from 'node:path'

const ROOT = new URL('..', import.meta.url).pathname

function medianMs(args: string[], runs: number): number {
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    const r = spawnSync(process.execPath, args, {cwd: ROOT, stdio: 'ignore'})
    times.push(performance.now() - t0)
    if (r.status !== 0 && !args.includes('--help')) throw new Error(`${args.join(' ')} exited ${r.status}`)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]
}

export interface StartupBenchResult {
  runs: number
  nodeMs: number
  commands: {command: string; ms: number; ratio: number}[]
  goalRatio: number
}

export async function benchStartup(runs = 10, log: (line: string) => void = console.log): Promise<StartupBenchResult> {
  const cli = join(ROOT, 'bin', 'run.js')
  const nodeMs = medianMs(['-e', '0'], runs)
  const commands = [
    ['validate configs/train_burgers_32dim.yaml', [cli, 'validate', 'configs/train_burgers_32dim.yaml', '--no-data']],
    ['--help', [cli, '--help']],
    ['--version', [cli, '--version']],
  ].map(([command, args]) => {
    const ms = medianMs(args as string[], runs)
    return {command: `ups ${command}`, ms, ratio: ms / nodeMs}
  })
  log(`start-up (median of ${runs}): node -e 0 ${nodeMs.toFixed(0)} ms`)
  for (const c of commands) log(`  ${c.command.padEnd(48)} ${c.ms.toFixed(0).padStart(5)} ms  ${c.ratio.toFixed(1)}x bare node (goal <= 4x)`)
  return {runs, nodeMs, commands, goalRatio: 4}
}
