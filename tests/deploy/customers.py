"""What the customers say in the LangGraph Server tests.

The served graph's scripted models (``served_support.py``) pick a conversation's
script by its first message, so each scenario opens with its own text.
"""

REFUND = "Order A-1002 arrived broken. Please refund the 250 dollars."
"""Approved: refund, email, answer."""
REFUND_SUPERSEDED = "Order A-1003 arrived broken. Please refund the 120 dollars."
"""Its refund is superseded by :data:`FOLLOW_UP` (``podium_pending="supersede"``)."""
FOLLOW_UP = "Actually I will keep the router. What did I pay for it?"
REFUND_BY_A2A = "My wifi router on order A-1003 is dead. Refund the 120 dollars, please."
"""Asked over A2A; a new message is refused, then the refund is approved."""
