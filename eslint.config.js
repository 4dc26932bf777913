import js from "@eslint/js"
import tseslint from "typescript-eslint"

export default tseslint.config(
  { ignores: ["node_modules/**", "data/**", "bench/results/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "error",
      "require-yield": "off",
      "no-restricted-imports": ["error", { patterns: [] }]
    }
  },
  {
    files: ["domain/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ regex: "^(?!effect($|/)|\\.)", message: "domain/ imports only effect" }, { group: ["../*"], message: "domain/ imports only effect and itself" }] }]
    }
  },
  {
    // domain's sub-folders (domain/entities/, …) may import the rest of domain/, and nothing above it
    files: ["domain/*/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ regex: "^(?!effect($|/)|\\.)", message: "domain/ imports only effect" }, { group: ["../../*"], message: "domain/ imports only effect and itself" }] }]
    }
  },
  {
    files: ["actors/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["fastify", "fastify/*", "../api/*", "../infra/*"], message: "actors/ talks to the world through services declared in domain/" }] }]
    }
  }
)
