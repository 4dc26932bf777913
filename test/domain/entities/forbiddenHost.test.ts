/**
 * The hosts no destination may point at (domain/entities/destination.ts `forbiddenHost`), in every
 * spelling a URL or a resolver gives them; loopback and private addresses stay allowed.
 */
import { assert, describe, it } from "@effect/vitest"
import { forbiddenHost } from "../../../domain/entities/destination.ts"

describe("forbiddenHost", () => {
  it("refuses cloud metadata and unspecified addresses, also IPv4 ones written as IPv6 (mapped hex or dotted, compatible, NAT64)", () => {
    const refused = [
      "169.254.169.254", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "[::ffff:a9fe:a9fe]", "64:ff9b::a9fe:a9fe", "::169.254.1.1",
      "0.0.0.0", "::ffff:0.0.0.0", "::", "::0", "0:0:0:0:0:0:0:0",
      "fe80::1", "fe80::1%eth0", "febf::1",
      "fd00:ec2::254", "fd00:0ec2:0:0:0:0:0:254", "[FD00:EC2::254]",
      "100.100.100.200", "::ffff:100.100.100.200",
      "metadata.google.internal", "metadata.google.internal.",
      // stop 28's outside attack: Google Cloud's IPv6 metadata address, 6to4 and SIIT forms of 169.254.169.254
      "fd20:ce::254", "[FD20:00CE::254]", "2002:a9fe:a9fe::", "2002:a9fe:a9fe:1::1", "::ffff:0:a9fe:a9fe", "::ffff:0:169.254.169.254"
    ]
    for (const host of refused) assert.isDefined(forbiddenHost(host), host)
  })

  it("lets loopback, private and public addresses and names through", () => {
    for (const host of ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.0.0.1", "fd00:ec2::253", "fd20:ce::253", "2002:c000:0201::1", "fec0::1", "2001:db8::1", "partner.example", "100.100.100.201"]) {
      assert.isUndefined(forbiddenHost(host), host)
    }
  })
})
