import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // once more after a failure; the run ends naming those that passed only then (test/fixtures/failureSummary.ts)
    retry: 1,
    reporters: ["verbose", "./test/fixtures/failureSummary.ts"]
  }
})
