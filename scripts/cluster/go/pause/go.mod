// The test cluster's pause image: no image can be pulled, so the sandbox's process is ours.
module tlsward.test/cluster/pause

go 1.26.0
