import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // two files at a time (the default is one on 2 cores): most tests wait on processes, servers and
    // conditions rather than compute; the suite takes ~8.5 min instead of ~14
    maxWorkers: 2,
    isolate: false,
    // once more after a failure; the run ends naming those that passed only then (test/fixtures/failureSummary.ts)
    retry: 1,
    reporters: ["verbose", "./test/fixtures/failureSummary.ts"]
  }
})
