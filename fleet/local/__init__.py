"""Local clusters: real control planes run by kwokctl (:mod:`.clusters`), the Flux controllers run as
processes beside each one (:mod:`.flux`) and the smart-HTTP git endpoint they pull from (:mod:`.gitserve`)."""
