// A chat member on @stomp/stompjs (a third-party STOMP client) over WebSocket, on Node.
//
// usage: node stompjs.cjs URL TOKEN ROOM   (NODE_PATH must hold @stomp/stompjs and ws)
// Connects with the bearer token, subscribes to the room, prints READY, publishes one message,
// and prints the messages it received (its own and one from someone else) as one JSON line.
const { Client } = require('@stomp/stompjs');
const WebSocket = require('ws');

const [url, token, room] = process.argv.slice(2);
const received = [];
const errors = [];
let finished = false;

const client = new Client({
  webSocketFactory: () => new WebSocket(url, ['v12.stomp', 'v11.stomp']),
  connectHeaders: { Authorization: `Bearer ${token}` },
  heartbeatIncoming: 4000,
  heartbeatOutgoing: 4000,
  reconnectDelay: 0,
});

function finish() {
  if (finished) return;
  finished = true;
  console.log(JSON.stringify({ received, errors, finished: received.length >= 2 }));
  client.deactivate().then(() => process.exit(0));
}

client.onConnect = () => {
  // READY once the server confirms the subscription, so nothing sent after it is missed.
  client.watchForReceipt('subscribed', () => {
    console.log('READY');
    client.publish({
      destination: '/publish/chat.send',
      body: JSON.stringify({ chatRoomId: Number(room), content: 'from stompjs' }),
      headers: { 'content-type': 'application/json' },
    });
  });
  client.subscribe(`/topic/chat/chatRoomId${room}`, (message) => {
    received.push(JSON.parse(message.body));
    if (received.length >= 2) finish();
  }, { receipt: 'subscribed' });
};
client.onStompError = (frame) => {
  errors.push(frame.headers.message);
  finish();
};
setTimeout(finish, 30000);
client.activate();
