/** The cluster: which platform processes are alive and which shards each owns (admin only). */
import { Effect, Schema } from "effect"
import { Cluster, ClusterProcess } from "../../domain/Cluster.ts"
import { problemResponse } from "../problems.ts"
import { route } from "../route.ts"

const ClusterView = Schema.Struct({ processes: Schema.Array(ClusterProcess) }).annotate({ identifier: "Cluster" })

export const clusterRoutes = [
  route({
    method: "GET", url: "/v1/admin/cluster", tags: ["admin"], roles: [],
    summary: "The live platform processes and the command shards each owns (a process holding none is listed with [])",
    responses: { 200: { description: "processes", schema: ClusterView }, 401: problemResponse("no key"), 403: problemResponse("not admin") },
    handler: () => Effect.map(Cluster.use((cluster) => cluster.processes.pipe(Effect.orDie)), (processes) => ({ status: 200, body: { processes } }))
  })
]
