/**
 * Progress on stderr: a redrawn bar on a terminal, plain lines (every 10%) otherwise, so logs
 * captured from CI or nohup stay readable. stdout is never touched.
 */
export interface ProgressReporter {
  update(done: number, total: number, detail?: string): void
  done(): void
}

export function progressReporter(label: string, stream: NodeJS.WriteStream | NodeJS.WritableStream, width = 30): ProgressReporter {
  const tty = Boolean((stream as NodeJS.WriteStream).isTTY)
  let lastDecile = -1
  let drawn = false
  return {
    update(done, total, detail = '') {
      const frac = total > 0 ? Math.min(1, done / total) : 1
      if (tty) {
        const filled = Math.round(frac * width)
        stream.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}% ${detail}\x1b[K`)
        drawn = true
        return
      }
      const decile = Math.floor(frac * 10)
      if (decile > lastDecile) {
        lastDecile = decile
        stream.write(`${label}: ${done}/${total} (${decile * 10}%)${detail ? ` ${detail}` : ''}\n`)
      }
    },
    done() {
      if (tty && drawn) stream.write('\n')
    },
  }
}
