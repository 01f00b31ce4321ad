"""A chat member on stomp.py (a third-party STOMP client) over WebSocket.

usage: stomp_py.py HOST PORT TOKEN ROOM
Connects with the bearer token, subscribes to the room, prints READY, sends one message, and
prints the messages it received (its own and one from someone else) as one JSON line.
"""
import json
import sys
import threading

import stomp

host, port, token, room = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
received = []
done = threading.Event()
subscribed = threading.Event()
errors = []


class Listener(stomp.ConnectionListener):
    def on_message(self, frame):
        received.append(json.loads(frame.body))
        if len(received) >= 2:
            done.set()

    def on_receipt(self, frame):
        if frame.headers.get("receipt-id") == "subscribed":
            subscribed.set()

    def on_error(self, frame):
        errors.append(frame.headers.get("message"))
        done.set()


conn = stomp.WSStompConnection([(host, port)], ws_path="/ws-chat", heartbeats=(4000, 4000))
conn.set_listener("chat", Listener())
conn.connect(headers={"Authorization": f"Bearer {token}"}, wait=True)
conn.subscribe(destination=f"/topic/chat/chatRoomId{room}", id="py-1", ack="auto",
               headers={"receipt": "subscribed"})
subscribed.wait(30)
print("READY", flush=True)
conn.send(destination="/publish/chat.send",
          body=json.dumps({"chatRoomId": int(room), "content": "from stomp.py"}),
          content_type="application/json")
finished = done.wait(30)
conn.disconnect()
print(json.dumps({"received": received, "errors": errors, "finished": finished}), flush=True)
