import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // two files at a time (the default is one on 2 cores): most tests wait on processes, servers and
    // conditions rather than compute. Three at a time are no faster: the rest is CPU.
    maxWorkers: 2,
    // a worker runs file after file without loading the modules again: ~8.4 min instead of ~11.2
    // (nothing in the tests sets process-wide state; timers a file leaves behind run on in the next)
    isolate: false,
    // once more after a failure; the run ends naming those that passed only then (test/fixtures/failureSummary.ts)
    retry: 1,
    reporters: ["verbose", "./test/fixtures/failureSummary.ts"]
  }
})
