-- Chat messages; (room, send_time) is the identity, as in the seed's DynamoDB table. seq is the
-- message's position in the relay's log (Kafka offset), stored once per room.
CREATE TABLE IF NOT EXISTS chat_messages (
    chat_room_id BIGINT        NOT NULL,
    send_time    BIGINT        NOT NULL,
    seq          BIGINT        NULL,
    sender_id    BIGINT        NOT NULL,
    sender_name  VARCHAR(100)  NOT NULL,
    content      TEXT          NOT NULL,
    PRIMARY KEY (chat_room_id, send_time),
    UNIQUE KEY chat_messages_seq (chat_room_id, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
