# A small example: run it with `mix monty.run examples/hello.py`.
from dataclasses import dataclass


@dataclass
class Order:
    item: str
    quantity: int
    unit_price: float


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


orders = [Order("apple", 3, 0.5), Order("pear", 2, 0.75)]
total = sum(o.quantity * o.unit_price for o in orders)
print(f"{len(orders)} orders, total {total:.2f}")
print("fib(20) =", fib(20))
{"total": total, "items": [o.item for o in orders], "big": 2**100}
