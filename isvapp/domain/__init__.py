"""What a callback changes: the instance state machine and its idempotency (lifecycle), Kit
tenants (kit), license documents (licenses), what an order's details change (orderdetails, a job
handler), buyer credentials, the replay store and the callback log.

The marketplace blueprint (produce) and the pages call the domain. The domain writes through
storage and enqueues background work (background.jobs) in the same transaction; it never
imports a view or the blueprint.
"""
